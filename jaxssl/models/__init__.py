"""Encoders and heads."""
from jaxssl.models.heads import MLP, DINOHead, Prototypes, SSLNetwork, cosine_scores
from jaxssl.models.resnet import ENCODERS, ResNet, ResNet18, ResNet50, SmallResNet, representation_dim

__all__ = ["MLP", "DINOHead", "Prototypes", "SSLNetwork", "cosine_scores", "ENCODERS", "ResNet", "ResNet18",
           "ResNet50", "SmallResNet", "representation_dim"]
