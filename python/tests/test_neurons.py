import json

import pytest

from safeneuron_trl.neurons import NeuronsFileError, read_neuron_set


def neurons_file(tmp_path, **changes):
    data = {"format": "safeneuron.neurons/1", "model": "m", "pool": "mean", "tau_es": 2.0, "tau_sas": 2.0,
            "layers": 3, "intermediate_size": 8, "harmful": 4, "harmless": 4,
            "sets": {"es": [[0, 1], [2, 7]], "sas": [[0, 1], [1, 3]], "union": [[0, 1], [1, 3], [2, 7]]},
            "counts": {"es": 2, "sas": 2, "union": 3}}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "neurons.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_reads_each_set_per_layer(tmp_path):
    path = neurons_file(tmp_path)
    assert read_neuron_set(path, "union") == (3, 8, [[1], [3], [7]])
    assert read_neuron_set(path, "es") == (3, 8, [[1], [], [7]])


def test_topk_set(tmp_path):
    path = neurons_file(tmp_path, top_k=2, sets={"es": [], "sas": [], "union": [], "topk": [[1, 2], [1, 5]]},
                        counts={"es": 0, "sas": 0, "union": 0, "topk": 2})
    assert read_neuron_set(path, "topk")[2] == [[], [2, 5], []]
    with pytest.raises(NeuronsFileError, match="no 'topk' set"):
        read_neuron_set(neurons_file(tmp_path), "topk")


@pytest.mark.parametrize("changes, message", [
    ({"format": "other/1"}, "format is 'other/1'"),
    ({"layers": None}, "missing key 'layers'"),
    ({"pool": "median"}, "pool is 'median'"),
    ({"layers": "3"}, "field 'layers'"),
    ({"sets": {"es": [[0, 1]], "sas": [[0, 1]], "union": [[0, 1], [0, 1]]}, "counts": {"es": 1, "sas": 1, "union": 2}},
     r"sets.union\[1\] = \[0, 1\] is not after"),
    ({"sets": {"es": [[0, 9]], "sas": [], "union": [[0, 9]]}, "counts": {"es": 1, "sas": 0, "union": 1}},
     r"sets.es\[0\] = \[0, 9\] is outside 3 layers × 8 neurons"),
    ({"sets": {"es": [[0, 1]], "sas": [], "union": [[0, 2]]}, "counts": {"es": 1, "sas": 0, "union": 1}},
     "not the union"),
    ({"counts": {"es": 2, "sas": 2, "union": 4}}, "counts.union = 4 but sets.union holds 3"),
    ({"sets": {"es": [[0]], "sas": [], "union": []}, "counts": {"es": 1, "sas": 0, "union": 0}},
     r"sets.es\[0\] = \[0\] is not a \[layer, neuron\] pair"),
    ({"top_k": 1}, "top_k is present but sets.topk is missing"),
])
def test_bad_files_name_the_file_and_field(tmp_path, changes, message):
    path = neurons_file(tmp_path, **changes)
    with pytest.raises(NeuronsFileError, match=message) as caught:
        read_neuron_set(path)
    assert str(caught.value).startswith(path + ": ")


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(NeuronsFileError, match="cannot read"):
        read_neuron_set(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\"format\": ")
    with pytest.raises(NeuronsFileError, match="not valid JSON"):
        read_neuron_set(str(bad))
    with pytest.raises(NeuronsFileError, match="unknown neuron set 'all'"):
        read_neuron_set(neurons_file(tmp_path), "all")
