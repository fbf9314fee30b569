"""The same training step in lightly (PyTorch), for benchmarks/speed/throughput.py. Never imported by jaxssl.

Runs in a separate environment that has PyTorch and lightly (``pip install torch==2.14.1 torchvision==0.29.1
lightly``); benchmarks/speed/throughput.py starts it as a subprocess and reads one JSON line from its stdout.

    python benchmarks/peers/lightly_step.py step --method simclr --model small_resnet --batch 256 --steps 5
    python benchmarks/peers/lightly_step.py augment --method simclr --size 28 --channels 1 --batch 256 --steps 3

``step``: two views already on the device (random tensors; augmentation is timed on its own), forward through
backbone and heads, the method's loss, backward, LARS update (and BYOL's momentum update), the networks matching
jaxssl's: the small ResNet 16-32-64-128 (CIFAR stem, one basic block per stage) or torchvision's ResNet-18 with
the CIFAR stem (3x3 stride-1 convolution, no max-pool), as lightly's and solo-learn's CIFAR examples, and the
heads of jaxssl's configs (SimCLR 2048 -> 128; BYOL 4096 -> 256 with a 4096 -> 256 predictor; VICReg's
2048-2048-2048 expander). ``augment``: lightly's transform of the method on a batch of PIL images, two views,
in this one process (a DataLoader worker's work). ``--channels_last`` puts the model and inputs in PyTorch's
channels-last memory format, which its performance guide recommends for convolutions on GPUs.
"""

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch
import torchvision
from lightly.loss import NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.models.modules import heads
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.lars import LARS
from torch import nn


class BasicBlock(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.shortcut = nn.Identity()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return torch.relu(y + self.shortcut(x))


def small_resnet(channels: int) -> nn.Module:
  """jaxssl's SmallResNet: 3x3 stem, one basic block per stage, widths 16-32-64-128, global average pool."""
  layers = [nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
  cin = 16
  for index, width in enumerate((16, 32, 64, 128)):
    layers.append(BasicBlock(cin, width, 1 if index == 0 else 2))
    cin = width
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  return nn.Sequential(*layers)


def resnet18_cifar(channels: int) -> nn.Module:
  model = torchvision.models.resnet18()
  model.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
  model.maxpool = nn.Identity()
  model.fc = nn.Identity()
  return model


def resnet50_imagenet(channels: int) -> nn.Module:
  """torchvision's ResNet-50 as the ImageNet recipes use it (7x7 stem and max-pool, 224 px)."""
  model = torchvision.models.resnet50()
  model.fc = nn.Identity()
  return model


BACKBONES = {"small_resnet": (small_resnet, 128), "resnet18": (resnet18_cifar, 512),
             "resnet50": (resnet50_imagenet, 2048)}


class Method(nn.Module):

  def __init__(self, name: str, backbone: nn.Module, dim: int):
    super().__init__()
    self.name = name
    self.backbone = backbone
    if name == "simclr":
      self.projection = heads.SimCLRProjectionHead(dim, 2048, 128)
      self.criterion = NTXentLoss(temperature=0.1)
    elif name == "byol":
      self.projection = heads.BYOLProjectionHead(dim, 4096, 256)
      self.prediction = heads.BYOLPredictionHead(256, 4096, 256)
      self.backbone_momentum = copy.deepcopy(backbone)
      self.projection_momentum = copy.deepcopy(self.projection)
      deactivate_requires_grad(self.backbone_momentum)
      deactivate_requires_grad(self.projection_momentum)
      self.criterion = NegativeCosineSimilarity()
    elif name == "vicreg":
      self.projection = heads.VICRegProjectionHead(dim, 2048, 2048, num_layers=3)
      self.criterion = VICRegLoss()
    else:
      raise ValueError(f"unknown method {name!r}")

  def loss(self, x0, x1):
    if self.name == "byol":
      update_momentum(self.backbone, self.backbone_momentum, m=0.99)
      update_momentum(self.projection, self.projection_momentum, m=0.99)
      p0 = self.prediction(self.projection(self.backbone(x0)))
      p1 = self.prediction(self.projection(self.backbone(x1)))
      with torch.no_grad():
        z0 = self.projection_momentum(self.backbone_momentum(x0))
        z1 = self.projection_momentum(self.backbone_momentum(x1))
      return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
    z0 = self.projection(self.backbone(x0))
    z1 = self.projection(self.backbone(x1))
    return self.criterion(z0, z1)


def time_step(args) -> dict:
  torch.manual_seed(0)
  torch.backends.cudnn.benchmark = True
  make_backbone, dim = BACKBONES[args.model]
  backbone = make_backbone(args.channels)
  model = Method(args.method, backbone, dim).to(args.device)
  optimizer = LARS(model.parameters(), lr=0.3 * args.batch / 256, momentum=0.9, weight_decay=1e-6)
  shape = (args.batch, args.channels, args.size, args.size)
  x0, x1 = torch.randn(shape, device=args.device), torch.randn(shape, device=args.device)
  if args.channels_last:                         # PyTorch's advice for convolutions on tensor cores
    model = model.to(memory_format=torch.channels_last)
    x0, x1 = x0.to(memory_format=torch.channels_last), x1.to(memory_format=torch.channels_last)
  autocast = (torch.autocast(args.device, dtype=torch.bfloat16) if args.dtype == "bfloat16"
              else torch.autocast(args.device, enabled=False))

  def step():
    with autocast:
      loss = model.loss(x0, x1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

  for _ in range(args.warmup):
    step()
  times = []
  for _ in range(args.steps):
    if args.device == "cuda":
      torch.cuda.synchronize()
    start = time.perf_counter()
    loss = step()
    float(loss)                                   # waits for the step
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return {"step_s": seconds, "images_per_s": args.batch / seconds, "threads": torch.get_num_threads()}


def time_augment(args) -> dict:
  from PIL import Image
  from lightly.transforms import BYOLTransform, SimCLRTransform, VICRegTransform
  from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform
  normalize = {"mean": [0.286] * args.channels, "std": [0.353] * args.channels}
  # The recipes of jaxssl's configs: SimCLR without blur at this size, BYOL's and VICReg's asymmetric pair.
  if args.method == "simclr":
    transform = SimCLRTransform(input_size=args.size, gaussian_blur=0.0, normalize=normalize)
  elif args.method == "byol":
    transform = BYOLTransform(BYOLView1Transform(input_size=args.size, normalize=normalize),
                              BYOLView2Transform(input_size=args.size, normalize=normalize))
  else:
    transform = VICRegTransform(input_size=args.size, normalize=normalize)
  rng = np.random.default_rng(0)
  mode = "L" if args.channels == 1 else "RGB"
  pixels = rng.integers(0, 256, (args.batch, args.size, args.size, args.channels), dtype=np.uint8)
  images = [Image.fromarray(p[..., 0] if args.channels == 1 else p, mode) for p in pixels]

  def batch():
    views = [transform(image) for image in images]
    return torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])

  batch()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    batch()
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return {"batch_s": seconds, "images_per_s": args.batch / seconds}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("what", choices=("step", "augment"))
  parser.add_argument("--method", default="simclr", choices=("simclr", "byol", "vicreg"))
  parser.add_argument("--model", default="small_resnet", choices=tuple(BACKBONES))
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--channels_last", action="store_true", help="model and inputs in channels-last layout")
  parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
  args = parser.parse_args()
  result = time_step(args) if args.what == "step" else time_augment(args)
  result.update(torch=torch.__version__, device=args.device)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
