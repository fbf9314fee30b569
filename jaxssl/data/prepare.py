"""Prepares a TFDS dataset in array_record, the format ``tfds.data_source`` reads (random access, no TensorFlow).

    python -m jaxssl.data.prepare fashion_mnist --from /usr/share/datasets/fashion-mnist --data_dir DIR
    python -m jaxssl.data.prepare cifar10 --data_dir DIR           # online: TFDS downloads as usual

``--from DIR`` builds TFDS's own ``fashion_mnist`` / ``mnist`` (same builder, version, features and splits)
from local IDX files, with no network: TFDS's download step is replaced by reading DIR, so files that were
re-compressed (Debian's ``dataset-fashion-mnist``, whose checksums differ from TFDS's) work too. Writing the
records needs TensorFlow once (``pip install 'jaxssl[prepare]'``); training reads them without it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile

from jaxssl.data import idx

# The IDX datasets TFDS builds from the same four files.
IDX_DATASETS = ("fashion_mnist", "mnist")


def _local_builder_class(name: str):
  """TFDS's builder for ``name`` with its download step replaced by local IDX files (not registered)."""
  from tensorflow_datasets.image_classification import mnist

  base = {"fashion_mnist": mnist.FashionMNIST, "mnist": mnist.MNIST}[name]

  class LocalIdx(base, skip_registration=True):
    """``base`` reading ``source_dir`` instead of downloading."""
    source_dir: str = ""

    def _split_generators(self, dl_manager):
      del dl_manager
      import tensorflow_datasets as tfds

      def split(stem: str) -> dict:
        images = idx.find_file(self.source_dir, f"{stem}-images-idx3-ubyte")
        labels = idx.find_file(self.source_dir, f"{stem}-labels-idx1-ubyte")
        if images is None or labels is None:
          raise FileNotFoundError(f"--from {self.source_dir}: missing {stem}-images-idx3-ubyte[.gz] or "
                                  f"{stem}-labels-idx1-ubyte[.gz]")
        return dict(images_path=images, labels_path=labels)

      return [tfds.core.SplitGenerator(name="train", gen_kwargs=split("train")),
              tfds.core.SplitGenerator(name="test", gen_kwargs=split("t10k"))]

    def _generate_examples(self, images_path: str, labels_path: str):
      images, labels = idx.read_idx(images_path), idx.read_idx(labels_path)
      if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels")
      for i in range(len(images)):
        yield i, {"image": images[i][..., None], "label": int(labels[i])}

  LocalIdx.name = name
  return LocalIdx


def quiet_tfds() -> None:
  """TensorFlow's and TFDS's own output off (its C++ log lines, the oneDNN notice, absl's INFO lines and the
  progress bars): the command says what it does in its own lines. Before TensorFlow is imported."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  from absl import logging

  import tensorflow_datasets as tfds

  logging.set_verbosity(logging.ERROR)
  tfds.disable_progress_bar()


def prepare(name: str, data_dir: str | None = None, source_dir: str | None = None,
            verbose: bool = False) -> dict[str, int]:
  """Builds ``name`` in ``data_dir`` (TFDS's default when None) as array_record; returns examples per split.

  With ``source_dir`` (only for IDX_DATASETS) nothing is downloaded. TFDS's own messages are shown only when
  ``verbose``.
  """
  if not verbose:
    quiet_tfds()
  import tensorflow_datasets as tfds

  with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):   # TFDS prints its own banner
    return _build(tfds, name, data_dir, source_dir)


def _build(tfds, name: str, data_dir: str | None, source_dir: str | None) -> dict[str, int]:
  if source_dir is not None:
    if name not in IDX_DATASETS:
      raise ValueError(f"--from is supported for {', '.join(IDX_DATASETS)}, not {name!r}; "
                       "without --from TFDS downloads it")
    if not os.path.isdir(source_dir):
      raise ValueError(f"--from {source_dir!r} is not a directory")
    builder = _local_builder_class(name)(data_dir=data_dir, file_format="array_record")
    builder.source_dir = source_dir
    with tempfile.TemporaryDirectory() as downloads:     # nothing is downloaded; TFDS still wants a directory
      builder.download_and_prepare(download_dir=downloads)
  else:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
  return {split: info.num_examples for split, info in builder.info.splits.items()}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxssl.data.prepare", description=__doc__.split("\n")[0])
  parser.add_argument("dataset", help="TFDS name, e.g. fashion_mnist, cifar10")
  parser.add_argument("--from", dest="source_dir", default=None,
                      help=f"directory of local IDX files ({', '.join(IDX_DATASETS)}); no network needed")
  parser.add_argument("--data_dir", default=None, help="TFDS data_dir to write to (default: TFDS's)")
  parser.add_argument("--verbose", action="store_true", help="show TFDS's and TensorFlow's own messages")
  args = parser.parse_args(argv)
  origin = f"from {args.source_dir}" if args.source_dir else "downloading through TFDS"
  print(f"preparing {args.dataset} ({origin}; a minute for Fashion-MNIST)...", flush=True)
  try:
    counts = prepare(args.dataset, args.data_dir, args.source_dir, args.verbose)
  except ModuleNotFoundError as e:
    print(f"error: preparing needs {e.name}; install it with `pip install 'jaxssl[prepare]'`", file=sys.stderr)
    return 2
  except Exception as e:  # noqa: BLE001 -- the command's contract is one line and exit 2
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"error: prepare {args.dataset}: {message}", file=sys.stderr)
    return 2
  where = args.data_dir or "TFDS's default data_dir"
  print(f"prepared {args.dataset} in {where}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
  return 0


if __name__ == "__main__":
  sys.exit(main())
