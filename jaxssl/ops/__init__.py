"""Pure functions on arrays: losses, masks, augmentation, mixing, RandAugment, the optimizer."""
