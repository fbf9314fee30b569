"""MAE on Fashion-MNIST with a micro ViT (4 blocks, 64 wide) on 4x4 patches: 49 patches, 12 of them visible.

    python -m jaxssl.main --config configs/mae.py --workdir runs/mae

The official recipe (main_pretrain.py) scaled down for CPU minutes: mask ratio 0.75, per-patch normalised
targets, fixed sine-cosine positions, MAE's initialisation, AdamW (betas 0.9, 0.95) with weight decay 0.05 off
for biases and norms, a warm-up then cosine; crops of scale (0.2, 1) and flips only. Not the paper's: the
decoder (64 wide, 2 blocks, 4 heads instead of 512, 8, 16), the schedule (5 epochs, 1 of warm-up, instead of
800 and 40) and the learning rate (1e-3 x batch / 256 instead of 1.5e-4: the short schedule of a small model).
The online probe is off (the encoder sees only the visible patches); kNN reads the full image's class token.
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("mae")            # the micro ViT, sine-cosine positions, AdamW (0.9, 0.95), ...
  m = config.method
  m.decoder_dim, m.decoder_depth, m.decoder_heads = 64, 2, 4
  config.optim.base_lr = 1e-3
  config.optim.warmup_epochs = 1.0
  config.train.num_epochs = 5.0
  return config
