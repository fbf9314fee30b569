"""The scripts behind BENCHMARKS.md, by what they compare: ``accuracy/`` (kNN, linear probe and fine-tuning top-1,
against lightly and baselines), ``speed/`` (step time, throughput, MFU, memory, the input path), ``parity/`` (the
same computation as the peers' or as before a change, value for value) and ``peers/`` (the PyTorch side: lightly,
timm and transformers, run in their own venv). ``common.py`` holds what several of them share."""
