"""The model zoo: names, weights lookup, integrity checks, and the messages a user sees."""

from __future__ import annotations

import shutil

import pytest
import torch

from vsrapp import zoo
from vsrapp.cli import main
from vsrapp_models.basicvsr import BasicVSR


def test_every_entry_names_its_weights_source_and_licence():
    names = [e.name for e in zoo.list_models()]
    assert len(names) == len(set(names))
    assert {"bicubic", "basicvsr-vimeo-bi", "basicvsr-reds4"} <= set(names)
    for entry in zoo.list_models():
        if entry.weights:
            assert len(entry.weights.sha256) == 64 and entry.weights.url and entry.weights.licence


def test_get_model_loads_verified_official_weights(weights_env):
    model = zoo.get_model("basicvsr-vimeo-bi")
    assert isinstance(model, BasicVSR) and not model.training


def test_missing_weights_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))
    with pytest.raises(zoo.WeightsError) as err:
        zoo.get_model("basicvsr-vimeo-bi")
    message = str(err.value)
    assert "BasicVSR_Vimeo90K_BIx4.pth" in message and str(tmp_path) in message and "VSRAPP_WEIGHTS" in message


def test_corrupt_weights_are_refused_by_hash(tmp_path, monkeypatch, vimeo_weights):
    damaged = tmp_path / vimeo_weights.name
    data = bytearray(vimeo_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))
    entry = zoo.get_entry("basicvsr-vimeo-bi")
    assert zoo.weights_status(entry) == "corrupt"
    with pytest.raises(zoo.WeightsError, match="corrupt"):
        zoo.get_model("basicvsr-vimeo-bi")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(zoo.ZooError, match="basicvsr-vimeo-bi"):
        zoo.get_model("basicvsr-does-not-exist")


def test_checkpoint_path_loads_and_code_pickles_are_refused(tmp_path, vimeo_weights):
    copy = tmp_path / "mine.pth"
    shutil.copy(vimeo_weights, copy)
    assert isinstance(zoo.get_model(str(copy)), BasicVSR)

    class Payload:  # a pickle that would run code on load must never be unpickled
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"params": Payload()}, evil)
    with pytest.raises(zoo.WeightsError, match="cannot read checkpoint"):
        zoo.get_model(str(evil))


def test_cli_models_lists_installed_and_missing(capsys, tmp_path, monkeypatch, official_weights_dir):
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))
    shutil.copy(official_weights_dir / "BasicVSR_REDS4.pth", tmp_path)
    assert main(["models"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["basicvsr-reds4"] == "installed"
    assert rows["basicvsr-vimeo-bi"] == "missing"
    assert rows["bicubic"] == "built-in"


def test_cli_error_is_one_line_and_nonzero(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("VSRAPP_WEIGHTS", str(tmp_path))
    assert main(["eval", "--model", "basicvsr-vimeo-bi", "--data", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vsrapp: error:") and "not found" in err[0]


@pytest.mark.parametrize("amx", [False, True])
def test_cli_models_says_what_precision_auto_runs_here(capsys, monkeypatch, amx):
    from vsrapp.engine import hardware

    monkeypatch.setattr(hardware, "has_amx_bf16", lambda: amx)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["models"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == ("default precision (--precision auto) on this machine: "
                    + ("bf16 (the CPU has AMX)" if amx else "fp32 (no AMX on this CPU)"))
