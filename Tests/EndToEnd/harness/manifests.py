"""YAML of the deployment files (deploy/), read strictly.

  StrictLoader   a SafeLoader for which a duplicate mapping key is an error (PyYAML keeps the
                 last one silently)
  load, load_all one document / every non-empty document of a file, with StrictLoader
"""
import yaml


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader for which a duplicate mapping key is an error (PyYAML keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.load_all(f, Loader=StrictLoader) if doc is not None]


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=StrictLoader)
