"""The README's Python blocks run as pasted (the encoder example after a run exists in runs/vicreg, as the
README's main command leaves it), so a snippet that cannot run fails CI."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks():
  with open(os.path.join(ROOT, "README.md")) as f:
    return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_the_readme_has_python_blocks():
  assert len(_python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
  block = _python_blocks()[index]
  monkeypatch.chdir(tmp_path)
  if "runs/vicreg" in block:                 # the state the README's main command leaves behind, made small
    from jaxssl import train
    from tiny import tiny_config

    config = tiny_config("vicreg")
    config.train.num_steps, config.eval.at_end, config.eval.knn_at_init = 1, False, False
    train.run(config, "runs/vicreg")
  if "tests/data/" in block:                 # the repository's fixtures, as from its root
    os.symlink(os.path.join(ROOT, "tests"), tmp_path / "tests")
  exec(compile(block, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
