"""Config loading: unknown keys and wrong types are rejected with the key's name."""

from __future__ import annotations

import pytest

from engine.bundled import MODEL_CONFIGS as CONFIG_DIR
from engine.config import from_mapping, load_yaml, with_overrides
from engine.errors import ConfigError
from engine.model.arch import ArchSpec, load_arch


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


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML of a few hundred bytes whose aliases expand to ``width ** levels`` strings."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + f"\nbomb: *l{levels - 1}\n"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["train", "cameras", "data"])
def test_alias_bomb_is_refused_in_milliseconds(tmp_path, kind):
    import time

    from engine.data.yolo_format import load_yolo_source
    from engine.train.config import load_train_config

    path = tmp_path / f"{kind}.yaml"
    if kind == "train":  # under a known key, so conversion would walk the whole expansion
        path.write_text(_alias_bomb().replace("bomb: *l8", "name: *l8"))
        load = load_train_config
    elif kind == "cameras":
        path.write_text(_alias_bomb().replace("bomb: *l8", "cameras: *l8"))
        load = load_yaml
    else:
        path.write_text(_alias_bomb().replace("bomb: *l8", "names: *l8"))
        load = lambda p: load_yolo_source(p, "train")  # noqa: E731
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert time.perf_counter() - started < 0.5
    message = str(caught.value)
    assert "aliases expand to more than" in message and str(path) in message
    assert len(message) < 300 and "\n" not in message


def test_shared_blocks_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("base: &base {lr: 0.1, momentum: 0.9}\nfirst: *base\nsecond: {<<: *base, lr: 0.2}\n")
    assert load_yaml(path) == {"base": {"lr": 0.1, "momentum": 0.9}, "first": {"lr": 0.1, "momentum": 0.9},
                               "second": {"lr": 0.2, "momentum": 0.9}}


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="recursive YAML alias"):
        load_yaml(path)


def test_error_messages_show_a_bounded_value():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Small:
        count: int = 1

    with pytest.raises(ConfigError) as caught:
        from_mapping(Small, {"count": [list(range(1000))] * 1000})
    assert len(str(caught.value)) < 200 and "count: expected int" in str(caught.value)
