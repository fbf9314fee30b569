"""jaxssl's MAE against lightly's (which follows the official models_mae.py), from the same weights on the same
images and the same kept patches: the loss, the gradients and a few AdamW steps.

    python benchmarks/parity/mae_parity.py [--steps 3] [--batch 16] [--image_size 32] [--channels 3]

jaxssl's MAE (configs/mae.py's model: the micro ViT on 4x4 patches, here with a 2-block decoder) is initialised
with its own seed; benchmarks/peers/lightly_mae.py, in the PyTorch venv, copies the weights into lightly's model (a timm
VisionTransformer in MaskedVisionTransformerTIMM, and MAEDecoderTIMM), takes the masks jaxssl's method drew from
its per-example keys, and trains with the official loss and AdamW (betas 0.9, 0.95, weight decay 0.05 off for
1-D parameters) at jaxssl's learning rate. Prints the loss of each step on both sides, the largest gradient
difference at the first step (relative to the largest gradient), the parameters' after the last step, and
whether the fixed sine-cosine position embeddings (lightly computes its own) agree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxssl.engine import train_step
from jaxssl.methods import mae  # noqa: E402
from jaxssl.methods.base import StepInputs, Variables  # noqa: E402
from jaxssl.models.vit import sincos_pos_embed_2d  # noqa: E402
from jaxssl.schema import defaults  # noqa: E402


def flat(tree) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def config_for(args):
  config = defaults.get_config("mae")
  config.method.decoder_dim, config.method.decoder_depth, config.method.decoder_heads = 64, 2, 4
  config.augment.size = args.image_size
  config.data.mean, config.data.std = (0.5,) * args.channels, (0.25,) * args.channels
  config.train.batch_size = args.batch
  config.optim.base_lr, config.optim.warmup_steps = 1e-3, 0
  return config


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  args = parser.parse_args()

  config = config_for(args)
  # A schedule long enough to be constant over the steps compared: lightly gets the same, constant, rate.
  trainer = train_step.build(config, total_steps=10 ** 9, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), args.channels)
  lr = config.optim.base_lr * args.batch / 256
  vit = trainer.model.encoder
  spec = {"image_size": args.image_size, "patch_size": vit.patch_size, "channels": args.channels, "dim": vit.dim,
          "depth": vit.depth, "heads": vit.num_heads, "decoder_dim": config.method.decoder_dim,
          "decoder_depth": config.method.decoder_depth, "decoder_heads": config.method.decoder_heads,
          "norm_pix": config.method.norm_pix_loss, "weight_decay": config.optim.weight_decay, "lr": lr,
          "steps": args.steps}
  exchange: dict[str, np.ndarray] = {"spec": np.asarray(json.dumps(spec))}
  exchange.update({f"param:{k}": v for k, v in flat(state.params).items()})

  def loss_fn(params, images, keys):
    inputs = StepInputs([images], keys, jnp.zeros((args.batch,), jnp.int32), jnp.zeros((), jnp.int32), (), None)
    return trainer.method.loss(trainer.model, Variables(params, {}), None, inputs).loss

  grad_fn = jax.jit(jax.value_and_grad(loss_fn))
  rng = np.random.default_rng(0)
  params, opt_state, losses, first_grads = state.params, state.opt_state, [], None
  length = (args.image_size // vit.patch_size) ** 2
  for step in range(args.steps):
    images = rng.normal(size=(args.batch, args.image_size, args.image_size, args.channels)).astype(np.float32)
    keys = jax.random.split(jax.random.key(100 + step), args.batch)
    masks = mae.masks_for(keys, length, config.method.mask_ratio)     # what the method's loss draws from keys
    exchange[f"images{step}"], exchange[f"ids_keep{step}"] = images, np.asarray(masks.ids_keep)
    exchange[f"mask{step}"] = np.asarray(masks.mask)
    loss, grads = grad_fn(params, jnp.asarray(images), keys)
    first_grads = first_grads or flat(grads)
    updates, opt_state = trainer.tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    losses.append(float(loss))

  with tempfile.TemporaryDirectory() as tmp:
    path_in, path_out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
    np.savez(path_in, **exchange)
    subprocess.run([args.lightly_python, common.peer("lightly_mae.py"), path_in, path_out],
                   check=True)
    theirs = dict(np.load(path_out))

  grid = (args.image_size // vit.patch_size,) * 2
  pos_diff = max(float(np.abs(theirs["decoder_pos_embed"] - sincos_pos_embed_2d(spec["decoder_dim"], grid, True)).max()),
                 float(np.abs(theirs["encoder_pos_embed"] - sincos_pos_embed_2d(vit.dim, grid, True)).max()))
  grad_scale = max(float(np.abs(g).max()) for g in first_grads.values())
  grad_diff = max(float(np.abs(first_grads[k] - theirs[f"grad:{k}"]).max()) for k in first_grads)
  final = flat(params)
  param_diff = max(float(np.abs(final[k] - theirs[f"param:{k}"]).max()) for k in final)
  param_move = max(float(np.abs(final[k] - exchange[f"param:{k}"]).max()) for k in final)
  print(f"MAE parity: jaxssl against lightly (official loss), batch {args.batch}, {args.image_size} px, "
        f"{args.channels} channels, ViT {vit.dim}x{vit.depth} on {vit.patch_size}px patches, decoder "
        f"{spec['decoder_dim']}x{spec['decoder_depth']}, mask ratio {config.method.mask_ratio}, AdamW lr {lr:g}")
  print("| step | jaxssl loss | lightly loss | abs difference |")
  print("|---|---|---|---|")
  for step, (a, b) in enumerate(zip(losses, theirs["losses"])):
    print(f"| {step} | {a:.7f} | {b:.7f} | {abs(a - b):.2g} |")
  print(f"gradients at step 0: largest difference {grad_diff:.3g} (largest gradient {grad_scale:.3g}, relative "
        f"{grad_diff / grad_scale:.3g})")
  print(f"parameters after {args.steps} AdamW steps: largest difference {param_diff:.3g} (largest change from the "
        f"start {param_move:.3g})")
  print(f"sine-cosine position embeddings, jaxssl's against lightly's own: largest difference {pos_diff:.3g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
