"""The model contract (models/contract.py) and the loader table (models/loading.py): every kind of model the
zoo, the loaders and the graph backends hand the engine states the same attributes and step methods, and every
weights format loads as the right class."""

from __future__ import annotations

import pytest
import torch
from nets import random_clip, tiny_net

from vsrapp import zoo
from vsrapp.bench.run import load_bench_model, random_plan
from vsrapp.engine.recurrence import StreamRunner, upscale_clip
from vsrapp_models import contract, loading
from vsrapp_models.basicvsr import BasicVSR, BasicVSRUni, uni_state_from_bidirectional
from vsrapp_models.bicubic import Bicubic
from vsrapp_models.dense_shaped import SPARSE_PLAN_FORMAT, SPARSE_PLAN_VERSION
from vsrapp_models.gassl_slim import GASSL_PLAN_FORMAT, GASSL_PLAN_VERSION, GasslBasicVSR, GasslBasicVSRUni, build_gassl
from vsrapp_models.nm_sparse import nm_mask
from vsrapp_models.pruned import load_pruned, save_pruned
from vsrapp_models.slim import SlimBasicVSR, SlimBasicVSRUni, build_slim

NF, NB = 8, 2  # tiny networks: fast on a shared CPU


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def assert_satisfies(model, bidirectional: bool, network: bool = True, only_its_direction: bool = True) -> None:
    """The contract's isinstance checks and attribute values for one model. ``only_its_direction``: a
    forward-only network has no ``backward_step`` (GraphModel defines one that raises, so it is exempt)."""
    assert isinstance(model, contract.SuperResolver)
    assert model.scale == 4 and model.bidirectional is bidirectional
    assert isinstance(model.modulus, int) and model.modulus >= 1
    assert isinstance(model.min_size, int) and model.min_size >= 1
    assert contract.traits(model) == contract.Traits(4, bidirectional, model.modulus, model.min_size)
    assert contract.is_network(model) is network
    if not network:
        assert isinstance(model, contract.ForwardOnlyModel) and not isinstance(model, contract.RecurrentNetwork)
    elif bidirectional:
        assert isinstance(model, contract.BidirectionalNetwork)
    else:
        assert isinstance(model, contract.ForwardOnlyNetwork)
        assert not only_its_direction or not isinstance(model, contract.BidirectionalNetwork)


# ------------------------------------------------------------------------------------------ tiny models, each kind
def gassl_plan(bidirectional: bool) -> dict:
    trunks = contract.trunk_names(bidirectional)
    return {"format": GASSL_PLAN_FORMAT, "version": GASSL_PLAN_VERSION,
            "arch": {"bidirectional": bidirectional, "num_feat": NF, "num_block": NB, "scale": 4},
            "stream_kept": {t: [0, 2, 3, 6] for t in trunks},
            "kept": {f"{contract.block_name(t, j)}.conv1.out": [1, 4, 5] for t in trunks for j in range(NB)}}


def sparse_plan(bidirectional: bool, pattern: str, layers: dict) -> dict:
    plan = {"format": SPARSE_PLAN_FORMAT, "version": SPARSE_PLAN_VERSION, "pattern": pattern,
            "arch": {"bidirectional": bidirectional, "num_feat": NF, "num_block": NB, "scale": 4},
            "layers": layers}
    if pattern == "nm":
        plan["m"] = 4
    return plan


def export_folder(tmp_path, method: str, bidirectional: bool):
    """A pruned export folder of ``method`` (tiny, random weights) and the model it holds."""
    torch.manual_seed(0)
    if method == "ssl":
        plan = random_plan(0.5, seed=3, bidirectional=bidirectional, num_feat=NF, num_block=NB)
        model = build_slim(plan)
    elif method == "gassl":
        plan = gassl_plan(bidirectional)
        model = build_gassl(plan)
    else:
        model = tiny_net(bidirectional, num_feat=NF, num_block=NB)
        layers = {}
        if method == "nm":  # one layer really 2:4-masked, so the load-time pattern check has work to do
            name = f"{contract.block_name(contract.FORWARD_TRUNK, 0)}.conv1"
            conv = model.get_submodule(name)
            with torch.no_grad():
                conv.weight.mul_(nm_mask(conv.weight, 2))
            layers[name] = {"n": 2, "numel": conv.weight.numel(), "nnz": int((conv.weight != 0).sum())}
        plan = sparse_plan(bidirectional, "nm" if method == "nm" else "unstructured", layers)
    folder = save_pruned(tmp_path / f"{method}-{bidirectional}", model.state_dict(), plan, {"method": method})
    return folder, model.eval()


EXPECTED = {("ssl", True): SlimBasicVSR, ("ssl", False): SlimBasicVSRUni,
            ("gassl", True): GasslBasicVSR, ("gassl", False): GasslBasicVSRUni,
            ("nm", True): BasicVSR, ("nm", False): BasicVSRUni,
            ("issp", True): BasicVSR, ("issp", False): BasicVSRUni}


# ------------------------------------------------------------------------------------------ the contract
@pytest.mark.parametrize("bidirectional", [True, False])
def test_dense_networks_satisfy_the_contract(bidirectional):
    assert_satisfies(tiny_net(bidirectional, num_feat=NF, num_block=NB), bidirectional)


def test_bicubic_is_a_forward_only_model_without_a_network():
    assert_satisfies(Bicubic(), False, network=False)


@pytest.mark.parametrize("method", ["ssl", "gassl", "nm", "issp"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_every_pruned_family_satisfies_the_contract(tmp_path, method, bidirectional):
    folder, _ = export_folder(tmp_path, method, bidirectional)
    assert_satisfies(load_pruned(folder), bidirectional)


def test_every_zoo_model_satisfies_the_contract():
    for entry in zoo.list_models():
        # Bundled and weightless models as the zoo loads them; downloadable ones as their architecture.
        model = zoo.get_model(entry.name) if entry.bundled or entry.weights is None else zoo.build(entry.arch)
        assert_satisfies(model, entry.bidirectional, network=entry.arch != "bicubic")


@pytest.mark.parametrize("bidirectional", [True, False])
def test_an_exported_graph_model_satisfies_the_contract(tmp_path, bidirectional):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vsrapp import export
    from vsrapp.engine import backends

    net = tiny_net(bidirectional, num_feat=NF, num_block=NB)
    graph = backends.GraphModel(export.export_onnx(net, tmp_path / "onnx", name="tiny"))
    # The engine dispatches on ``bidirectional``; GraphModel has every step method whatever its direction.
    assert_satisfies(graph, bidirectional, only_its_direction=False)
    assert graph.num_feat == net.num_feat
    assert graph.modulus == graph.manifest["pad_multiple"] and graph.min_size == graph.manifest["min_size"]


@pytest.mark.parametrize("make", [lambda: tiny_net(False, num_feat=NF, num_block=NB),
                                  lambda: build_gassl(gassl_plan(False))])
def test_step_is_flow_forward_step_and_reconstruct(make):
    """What the contract says ``step`` is, which the profiler relies on to time a forward-only model's parts."""
    torch.manual_seed(0)
    model = make().eval()
    clip = random_clip(3)[0]
    timed = StreamRunner(model, timer=lambda part: torch.no_grad())
    with torch.no_grad():
        by_parts = torch.cat([timed.step(f[None]) for f in clip])
        assert torch.equal(by_parts, upscale_clip(model, clip))


def test_slim_classes_run_their_parents_init():
    """The parent's ``__init__`` runs (its attributes are set) and allocates nothing: the layers, their order
    and their random draws are exactly those of the slim builder alone."""
    from torch import nn

    from vsrapp_models.slim import _build_slim_layers

    plan = random_plan(0.5, seed=3, num_feat=NF, num_block=NB)
    torch.manual_seed(0)
    slim = build_slim(plan)
    torch.manual_seed(0)
    bare = nn.Module()
    _build_slim_layers(bare, plan)
    assert list(slim.state_dict()) == list(bare.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(slim.state_dict().values(), bare.state_dict().values()))
    assert slim.num_feat == NF and slim.plan is plan


# ------------------------------------------------------------------------------------------ parameter naming
def test_the_naming_rules():
    assert contract.trunk_names(True) == ("backward_trunk", "forward_trunk")
    assert contract.trunk_names(False) == ("forward_trunk",)
    assert contract.block_name("forward_trunk", 3) == "forward_trunk.main.2.3"
    assert contract.block_conv_names(False, 2) == [
        "forward_trunk.main.2.0.conv1", "forward_trunk.main.2.0.conv2",
        "forward_trunk.main.2.1.conv1", "forward_trunk.main.2.1.conv2"]
    assert contract.block_of("backward_trunk.main.2.17.conv1.in") == ("backward_trunk", 17)
    assert contract.block_of("forward_trunk.main.0.weight") is None
    assert contract.strip_block("backward_trunk.main.2.7.conv1.in") == "trunk.conv1.in"
    assert contract.strip_block("upconv1.out") == "upconv1.out"
    assert contract.part_of("net.spynet.basic_module.0.conv") == "spynet" == contract.part_of("spynet.x")
    net = tiny_net(True, num_feat=NF, num_block=NB)
    assert contract.num_blocks(net) == NB
    names = {n for n, _ in net.named_parameters()}
    # Every block conv the naming rule lists is a real parameter of the dense network.
    assert {f"{n}.weight" for n in contract.block_conv_names(True, NB)} <= names
    assert {contract.part_of(n) for n in names} == {"spynet", "backward_trunk", "forward_trunk",
                                                    *contract.UPSAMPLER}


# ------------------------------------------------------------------------------------------ the loader table
@pytest.mark.parametrize("method", ["ssl", "gassl", "nm", "issp"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_loader_table_loads_each_export_format_as_its_class(tmp_path, method, bidirectional):
    folder, original = export_folder(tmp_path, method, bidirectional)
    assert loading.weights_format(folder).name == method
    loaded = loading.load_model(folder)
    assert type(loaded) is EXPECTED[method, bidirectional] and not loaded.training
    x = random_clip(2, h=8, w=8)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))
    # The architecture alone, from plan.json: the same class and parameter shapes.
    built = loading.build_model(folder)
    assert type(built) is type(loaded)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in loaded.state_dict().items()}
    # The zoo and the bench take folders through the same table.
    assert type(zoo.load_slim_export(folder)) is type(loaded)
    assert type(load_bench_model(str(folder)).model) is type(loaded)
    assert type(load_bench_model(str(folder), random_weights=True).model) is type(loaded)


def test_the_loader_table_reads_basicsr_checkpoints(tmp_path, vimeo_weights):
    assert loading.weights_format(vimeo_weights) is loading.BASICSR
    bi = loading.load_model(vimeo_weights)
    assert type(bi) is BasicVSR and not bi.training
    uni_path = tmp_path / "uni.pth"
    torch.save({"params": uni_state_from_bidirectional(bi.state_dict())}, uni_path)
    uni = loading.load_model(uni_path)
    assert type(uni) is BasicVSRUni
    assert type(zoo.load_checkpoint(uni_path)) is BasicVSRUni  # the zoo's rule is the table's
    assert type(loading.build_model(uni_path)) is BasicVSRUni


def test_unknown_formats_are_refused(tmp_path):
    folder, _ = export_folder(tmp_path, "ssl", True)
    (folder / "meta.json").write_text('{"method": "magic"}')
    with pytest.raises(ValueError, match="unknown pruning method 'magic'"):
        loading.load_model(folder)
    with pytest.raises(ValueError, match="unknown architecture 'vdsr'"):
        loading.build_arch("vdsr")
    assert {a: type(loading.build_arch(a)) for a in loading.ARCHITECTURES} == {
        "basicvsr": BasicVSR, "basicvsr-uni": BasicVSRUni, "bicubic": Bicubic}
