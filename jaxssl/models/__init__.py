"""Encoders and heads."""
from jaxssl.models.heads import MLP, SSLNetwork
from jaxssl.models.resnet import ENCODERS, ResNet, ResNet18, ResNet50, SmallResNet, representation_dim

__all__ = ["MLP", "SSLNetwork", "ENCODERS", "ResNet", "ResNet18", "ResNet50", "SmallResNet",
           "representation_dim"]
