"""The generic registry: decorators, errors, entry-point plugins, --include."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from memorybench import memories
from memorybench.benchmarks.base import BENCHMARKS
from memorybench.benchmarks.common.datasets import DATASETS
from memorybench.memories.configuration import ConfigError, require
from memorybench.memories.registry import Registry, RegistryError, import_user_module, static_listing
from memorybench.runners.backends import BACKENDS
from memorybench.runners.commands.list import KINDS


def test_unknown_name_suggests_and_lists_choices() -> None:
    with pytest.raises(RegistryError) as error:
        memories.MEMORIES.get("gmp")
    message = str(error.value)
    assert "did you mean 'gpm'" in message and "vae" in message


def test_registering_a_different_target_twice_is_an_error() -> None:
    registry: Registry[type] = Registry("thing", "memorybench.test_things")

    @registry.register("a")
    class First:
        pass

    registry.register("a")(First)  # the same target again is fine
    with pytest.raises(RegistryError, match="already registered"):

        @registry.register("a")
        class Second:
            pass


class FakeEntryPoint:
    def __init__(self, name: str, target: object = None, error: Exception | None = None):
        self.name, self.value, self._target, self._error = name, f"fake:{name}", target, error

    def load(self) -> object:
        if self._error:
            raise self._error
        return self._target


def test_entry_point_plugins_load_and_broken_ones_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class PluginModel:
        """A plugin model."""

    points = [FakeEntryPoint("plugged", PluginModel), FakeEntryPoint("broken", error=ImportError("no module named x"))]
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: points if group == "memorybench.plugins" else []
    )
    registry: Registry[type] = Registry("plugin", "memorybench.plugins")
    with pytest.warns(UserWarning, match="broken"):
        assert registry.available() == ["plugged"]
    assert registry.get("plugged") is PluginModel
    assert "ImportError" in registry.plugin_errors["broken"]
    assert [item.name for item in registry.listing()] == ["broken", "plugged"]  # listing loads nothing


def test_include_imports_a_model_file_that_registers_itself(tmp_path: Path) -> None:
    plugin = tmp_path / "my_memory.py"
    plugin.write_text(
        textwrap.dedent(
            '''
            from memorybench.memories import register_memory
            from memorybench.memories.vae import VAE

            @register_memory("my_vae_copy_for_test")
            class MyVAE(VAE):
                """A user model loaded with --include."""
            '''
        )
    )
    import_user_module(str(plugin))
    assert "my_vae_copy_for_test" in memories.available()
    model = memories.create("my_vae_copy_for_test", code_size=4, network="mlp", hidden_size=8)
    assert model.config.code_size == 4


def test_include_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.py"):
        import_user_module(str(tmp_path / "nope.py"))


class Base:
    """The base every registered thing must subclass."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ThingConfig:
    size: int = 1

    def validate(self) -> None:
        require(self.size > 0, "size", f"must be positive, got {self.size}")


class FakeDistribution:
    def __init__(self, name: str):
        self.name = name


class FakeEntryPointOf(FakeEntryPoint):
    def __init__(self, name: str, target: object, dist: str):
        super().__init__(name, target)
        self.value, self.dist = f"{dist}.module:Thing", FakeDistribution(dist)


def test_create_goes_from_a_name_through_a_validated_config_to_an_instance() -> None:
    registry: Registry[type] = Registry("thing", "memorybench.test_things", base=Base)

    @registry.register("sized")
    class Sized(Base):
        config_class = ThingConfig

        def __init__(self, config: ThingConfig, *, label: str = ""):
            self.config, self.label = config, label

    thing = registry.create("sized", {"size": 3}, label="x")
    assert isinstance(thing, Sized) and thing.config.size == 3 and thing.label == "x"
    with pytest.raises(ConfigError, match=r"things\.sized: unknown key 'sise' \(did you mean 'size'\?\)"):
        registry.create("sized", {"sise": 3})
    with pytest.raises(ConfigError, match=r"suite\.thing\.size: must be positive"):
        registry.create("sized", {"size": 0}, where="suite.thing")


def test_a_registered_class_must_subclass_the_registry_base() -> None:
    registry: Registry[type] = Registry("thing", "memorybench.test_things", base=f"{__name__}:Base")
    with pytest.raises(RegistryError, match=rf"does not subclass {__name__}\.Base"):

        @registry.register("stray")
        class Stray:
            pass

    with pytest.raises(RegistryError, match="does not subclass"):
        memories.register_memory("not_a_model")(ThingConfig)
    assert "not_a_model" not in memories.available()


def test_entry_point_name_collisions_name_both_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    class One(Base):
        pass

    class Two(Base):
        pass

    points = [FakeEntryPointOf("twice", One, "dist-one"), FakeEntryPointOf("twice", Two, "dist-two")]
    points.append(FakeEntryPointOf("gpm", One, "dist-three"))  # a plugin taking a built-in's name
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points if group == "memorybench.c" else [])
    registry: Registry[type] = Registry("thing", "memorybench.c", base=Base)
    with pytest.warns(UserWarning, match="dist-one"):
        assert registry.available() == ["gpm"]  # no built-in 'gpm' in this registry
    with pytest.raises(RegistryError, match=r"'twice' is registered by two plugins: .*dist-one.* and .*dist-two"):
        registry.get("twice")
    models: Registry[type] = Registry("memory", "memorybench.c")
    models.register("gpm")(Two)  # as a built-in module would on import
    with pytest.warns(UserWarning) as caught:
        assert "gpm" not in models.available()
    assert any("collides" in str(warning.message) for warning in caught)
    with pytest.raises(
        RegistryError, match=r"dist-three.*collides with the built-in .*Two of distribution memorybench"
    ):
        models.get("gpm")
    listed = {item.name: item for item in static_listing("memory", "memorybench.c", "memorybench.memories")}
    assert "collides" in listed["gpm"].problem and "dist-two" in listed["twice"].problem


def test_a_broken_plugin_is_reported_as_broken_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [FakeEntryPoint("broken", error=ImportError("no module named x")), FakeEntryPoint("plain", ThingConfig)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points if group == "memorybench.b" else [])
    registry: Registry[type] = Registry("thing", "memorybench.b", base=Base)
    with pytest.warns(UserWarning, match="broken"):
        registry.available()
    with pytest.raises(RegistryError, match=r"'broken' is a broken plugin \(fake:broken .*ImportError: no module"):
        registry.get("broken")
    with pytest.raises(RegistryError, match=r"'plain' is a broken plugin .*does not subclass"):
        registry.get("plain")  # a plugin of the wrong kind is broken too, and does not crash the lookup
    with pytest.raises(RegistryError, match="unknown thing 'other'"):
        registry.get("other")


def test_provenance_names_the_distribution_whose_entry_point_loaded_a_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from memorybench.memories.vae import VAE

    point = FakeEntryPoint("plugged_vae", VAE)
    point.dist = type("Dist", (), {"name": "memorybench"})()  # type: ignore[attr-defined]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point] if group == "memorybench.p" else [])
    registry: Registry[type] = Registry("thing", "memorybench.p")
    found = registry.provenance("plugged_vae")
    assert found["name"] == "plugged_vae" and found["class"] == "memorybench.memories.vae.VAE"
    assert found["package"] == "memorybench" and found["version"] == importlib.metadata.version("memorybench")
    assert found["code_modules"] == ["memorybench.memories.vae", "memorybench.memories.protocol"]


@pytest.mark.parametrize("section", list(KINDS))
def test_list_reads_every_registry_without_importing_it(section: str) -> None:
    """``list`` reads the built-ins from source: the same names the registry imports, the same
    arguments the registry was created with."""
    registry = {"memories": memories.MEMORIES, "datasets": DATASETS, "benchmarks": BENCHMARKS, "backends": BACKENDS}
    live = registry[section]
    assert KINDS[section] == (live.kind, live.entry_point_group, live.builtin_package)
    static = {item.name: item for item in live.listing()}
    assert set(static) <= set(live.available())
    for name in live.available():
        if name in static:
            assert static[name].summary == live.describe(name) and static[name].summary, name
        else:  # registered at run time (a test's --include plugin), not a built-in
            assert not live.get(name).__module__.startswith(str(live.builtin_package)), name
