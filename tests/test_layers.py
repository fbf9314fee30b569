"""The package's layers: every import of a jaxssl module by another (at module level or inside a function, read
from the source with ``ast``) goes down the layers or stays within its own layer, and no set of modules imports
itself in a circle. A new module must be given its layer in ``LAYERS`` (the test names it until it is)."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The folders under jaxssl/, lowest first. A module may import its own layer's modules and those of lower
# layers; layers of equal height (data and models) may not import each other.
LAYERS = [
    ("common", 0, {"common"}),
    ("ops", 1, {"ops"}),
    ("data", 2, {"data"}),
    ("models", 2, {"models"}),
    ("methods", 3, {"methods"}),
    ("tasks", 4, {"tasks"}),
    ("schema", 5, {"schema"}),
    ("engine", 6, {"engine"}),
    ("runs", 7, {"runs", "weights"}),
    ("evals", 7, {"evals"}),
    ("loop", 8, {"train", "segment", "dry_run"}),
    # the entry points, the package itself, and the old names kept as the same modules (jaxssl.losses, ...)
    ("entry points", 9, {"", "main", "finetune", "evaluate", "export", "plot", "losses", "defaults",
                         "config_checks", "augment"}),
]

def _modules() -> dict[str, str]:
  """Dotted module name -> file, for every module of the package."""
  found = {}
  for folder, _, files in os.walk(os.path.join(ROOT, "jaxssl")):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        found[dotted.removesuffix(".__init__")] = path
  return found


def _imports(modules: dict[str, str]) -> dict[str, set[str]]:
  """Module -> the jaxssl modules it imports anywhere in its source (``from jaxssl import x`` counts as x)."""
  def resolve(name: str) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
      if ".".join(parts[:end]) in modules:
        return ".".join(parts[:end])
    return None

  graph = {}
  for module, path in modules.items():
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
      else:
        continue
      targets |= {resolve(n) for n in names if n.split(".")[0] == "jaxssl"}
    graph[module] = {t for t in targets if t and t != module}
  return graph


def _layer(module: str):
  inner = module.removeprefix("jaxssl").removeprefix(".")
  top = inner.split(".")[0]
  for name, height, members in LAYERS:
    if top in members:
      return name, height
  return None


def test_every_module_has_a_layer():
  missing = sorted(m for m in _modules() if _layer(m) is None)
  assert not missing, f"give these modules a layer in tests/test_layers.py's LAYERS: {missing}"


def test_imports_go_down_the_layers():
  upward = []
  for module, targets in _imports(_modules()).items():
    name, height = _layer(module)
    for target in sorted(targets):
      target_name, target_height = _layer(target)
      if target_name != name and target_height >= height:
        upward.append(f"{module} ({name}) imports {target} ({target_name})")
  assert not upward, "imports that run up or across the layers:\n" + "\n".join(upward)


def test_methods_and_tasks_read_no_data_schema_or_run():
  """A method (or the fine-tuning task) is arrays in, arrays out: it imports neither the data layer below it nor
  anything of the schema, the engine or the runs on disk."""
  graph = _imports(_modules())
  forbidden = ("jaxssl.data", "jaxssl.schema", "jaxssl.engine", "jaxssl.runs", "jaxssl.weights", "jaxssl.evals")
  found = [f"{module} imports {target}" for module, targets in graph.items()
           if module.startswith(("jaxssl.methods", "jaxssl.tasks"))
           for target in targets if target.startswith(forbidden)]
  assert not found, "\n".join(found)


def test_no_module_imports_itself_in_a_circle():
  graph = _imports(_modules())
  circles, state = [], {}

  def visit(module, path):
    state[module] = "open"
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        circles.append(" -> ".join(path[path.index(target):] + [target]))
      elif target not in state:
        visit(target, path + [target])
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_check_sees_imports_inside_functions(tmp_path):
  """The graph is read from every import statement, not only the module's top: a circle hidden by an import
  inside a function is one."""
  source = "def f():\n  from jaxssl import train\n  from jaxssl.data import sources\n"
  nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
  assert [n.module for n in nodes] == ["jaxssl", "jaxssl.data"]
  graph = _imports(_modules())
  assert "jaxssl.runs.restore" in graph["jaxssl"]                 # jaxssl/__init__.py imports it inside __getattr__


def test_the_readme_map_names_every_folder_and_layer():
  """The README's package map (``## A tour of the package``) lists exactly jaxssl's folders, and each folder is
  a layer here: the map a contributor reads is the layout the test enforces."""
  import re

  readme = open(os.path.join(ROOT, "README.md")).read()
  tour = readme[readme.index("## A tour of the package"):]
  block = tour[tour.index("```\njaxssl/"):]
  block = block[:block.index("\n```", 4)]
  mapped = set(re.findall(r"^  (\w+)/ ", block, flags=re.M))
  folders = {d for d in os.listdir(os.path.join(ROOT, "jaxssl"))
             if os.path.isfile(os.path.join(ROOT, "jaxssl", d, "__init__.py"))}
  assert mapped == folders, f"in the README's map only: {mapped - folders}; in jaxssl/ only: {folders - mapped}"
  layered = set().union(*(members for _, _, members in LAYERS))
  assert folders <= layered, f"folders without a layer in LAYERS: {folders - layered}"
  top = {name[:-3] for name in os.listdir(os.path.join(ROOT, "jaxssl")) if name.endswith(".py")} - {"__init__"}
  missing = sorted(name for name in top if f"{name}.py" not in block)
  assert not missing, f"top-level modules the README's map does not name: {missing}"
