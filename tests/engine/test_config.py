"""Config loading: unknown keys and wrong types are rejected with the key's name."""

from __future__ import annotations

import pytest

from engine.config import from_mapping, load_yaml, with_overrides
from engine.errors import ConfigError
from engine.model.arch import ArchSpec, load_arch
from engine.model.variants import CONFIG_DIR


def test_all_shipped_architectures_load():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"dy-yolov7", "dy-yolov7x", "dy-yolov7-w6", "dy-yolov7-tiny", "dy-faster-rcnn-r18",
            "dy-faster-rcnn-r50"} <= set(names)
    from engine.model.checkpoint import arch_from_config

    for name in names:
        assert arch_from_config(CONFIG_DIR / f"{name}.yaml").name == name


def test_unknown_key_is_named(tmp_path):
    data = load_yaml(CONFIG_DIR / "dy-yolov7-tiny.yaml")
    data["backbone"]["stages"][1]["block"]["depht"] = 3
    with pytest.raises(ConfigError, match=r"backbone\.stages\[1\]\.block\.depht: unknown key"):
        from_mapping(ArchSpec, data)


def test_wrong_type_and_range_are_named():
    data = load_yaml(CONFIG_DIR / "dy-yolov7-tiny.yaml")
    with pytest.raises(ConfigError, match="num_classes: expected int"):
        from_mapping(ArchSpec, {**data, "num_classes": "eighty"})
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        from_mapping(ArchSpec, {**data, "num_classes": 0})
    with pytest.raises(ConfigError, match="router_inputs names unknown stage 's128'"):
        from_mapping(ArchSpec, {**data, "router_inputs": ["s128"]})


def test_overrides_only_set_existing_keys():
    arch = load_arch(CONFIG_DIR / "dy-yolov7-tiny.yaml")
    assert with_overrides(arch, {"width_multiple": 0.5}).width_multiple == 0.5
    with pytest.raises(ConfigError, match="unknown key"):
        with_overrides(arch, {"widht_multiple": 0.5})


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
