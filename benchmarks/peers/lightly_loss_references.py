"""lightly's (and PyTorch's) values of the iBOT patch loss, KoLeo and I-JEPA's loss on seeded random inputs, for
tests/test_losses_masked.py to compare jaxssl's losses with (no torch in jaxssl's own environment).

    .venv-lightly/bin/python benchmarks/peers/lightly_loss_references.py tests/data/lightly_losses.npz

I-JEPA's loss is the official ``src/train.py``'s ``F.smooth_l1_loss`` (lightly's I-JEPA example uses the same
``nn.SmoothL1Loss``); its targets are ``F.layer_norm`` of the target encoder's tokens.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from lightly.loss import IBOTPatchLoss, KoLeoLoss


def main(out_path: str) -> None:
  rng = np.random.default_rng(0)
  n, length, k, d = 6, 10, 16, 8
  student = rng.normal(size=(n, length, k)).astype(np.float32)
  teacher = rng.normal(size=(n, length, k)).astype(np.float32)
  center = rng.normal(scale=0.3, size=(k,)).astype(np.float32)
  mask = rng.uniform(size=(n, length)) < 0.4
  mask[0] = False                                                     # an image without masked patches
  ibot = IBOTPatchLoss(output_dim=k, teacher_temp=0.07, student_temp=0.1)
  ibot.center.center = torch.from_numpy(center)[None]
  student_t = torch.from_numpy(student).requires_grad_()
  m = torch.from_numpy(mask)
  value = ibot(torch.from_numpy(teacher)[m], student_t[m], m.reshape(n, 2, 5))
  value.backward()
  features = rng.normal(size=(12, d)).astype(np.float32)
  features[3] = 2.0 * features[7] + 0.05 * features[3]               # a close pair
  features_t = torch.from_numpy(features).requires_grad_()
  koleo = KoLeoLoss()(features_t)
  koleo.backward()
  predictions = rng.normal(scale=2.0, size=(4, 3, 5, d)).astype(np.float32)
  tokens = rng.normal(scale=3.0, size=(4, 3, 5, d)).astype(np.float32)
  targets = F.layer_norm(torch.from_numpy(tokens), (d,))
  ijepa = F.smooth_l1_loss(torch.from_numpy(predictions), targets)
  np.savez(out_path, ibot_student=student, ibot_teacher=teacher, ibot_center=center, ibot_mask=mask,
           ibot_teacher_temperature=0.07, ibot_student_temperature=0.1, ibot_loss=value.item(),
           ibot_grad=student_t.grad.numpy(), koleo_features=features, koleo_loss=koleo.item(),
           koleo_grad=features_t.grad.numpy(), ijepa_predictions=predictions, ijepa_tokens=tokens,
           ijepa_targets=targets.numpy(), ijepa_loss=ijepa.item())
  print(f"iBOT patch {value.item():.6f}  KoLeo {koleo.item():.6f}  I-JEPA {ijepa.item():.6f} -> {out_path}")


if __name__ == "__main__":
  main(sys.argv[1])
