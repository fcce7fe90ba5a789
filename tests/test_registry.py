"""The generic registry: decorators, errors, entry-point plugins, --include."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from memorybench import memories
from memorybench.memories.registry import Registry, RegistryError, import_user_module


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
