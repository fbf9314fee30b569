"""MSN on Fashion-MNIST with a micro ViT (4 blocks, 64 wide) on 4x4 patches: a 28 px target view, a 28 px
anchor view with 15% of its patches dropped, and 10 focal views of 12 px.

    python -m jaxssl.main --config configs/msn.py --workdir runs/msn

The official recipe (``msn_vits16.yaml``) scaled down for CPU minutes: 1,024 prototypes, cosine temperature 0.1,
targets sharpened at 0.25 and Sinkhorn-balanced, me-max weight 1, the patch drop drawn once per 64 images (the
official per-GPU batch), EMA 0.996 -> 1 over 1.25 x the run, AdamW at 0.001 x batch / 1024 warmed up from a
fifth of it, cosines over 1.25 x the run, weight decay 0.04 -> 0.4, the encoder's gradients clipped to 3. Not the
paper's: the head (512-512 then 256 instead of 2048-2048-256), the schedule (5 epochs, 1 of warm-up; the paper
runs 600-800 with 15).
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("msn")          # micro ViT, the official optimizer and views
  m = config.method
  m.proj_hidden_dims = (512, 512)
  m.group_size = 64
  config.train.num_epochs = 5.0
  config.optim.warmup_epochs = 1.0
  a = config.augment
  a.num_local_crops, a.local_size = 10, 12
  return config
