"""Tests for lenna_core.space.genotypes: the published genotypes, validation and the JSON
round-trip."""

from __future__ import annotations

import json

import pytest

from lenna_core.space.genotypes import DARTS, DARTS_V1, DARTS_V2, NAMED_GENOTYPES, Genotype

# The genotypes as published by Liu et al. (ICLR 2019) and in quark0/darts cnn/genotypes.py,
# copied from /work/shared/FACTS.md.
PUBLISHED_V1 = {
    "normal": [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0),
               ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
               ("sep_conv_3x3", 0), ("skip_connect", 2)],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
               ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("skip_connect", 2),
               ("skip_connect", 2), ("avg_pool_3x3", 0)],
    "reduce_concat": [2, 3, 4, 5],
}
PUBLISHED_V2 = {
    "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
               ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
               ("skip_connect", 0), ("dil_conv_3x3", 2)],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
               ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
               ("skip_connect", 2), ("max_pool_3x3", 1)],
    "reduce_concat": [2, 3, 4, 5],
}


def valid(**changes) -> dict:
    """A valid genotype's fields (DARTS_V2 as plain lists), with some fields replaced."""
    fields = {k: [list(e) if isinstance(e, tuple) else e for e in v]
              for k, v in PUBLISHED_V2.items()}
    fields.update(changes)
    return fields


@pytest.mark.parametrize(("genotype", "published"),
                         [(DARTS_V1, PUBLISHED_V1), (DARTS_V2, PUBLISHED_V2)])
def test_named_genotypes_equal_the_published_lists(genotype, published):
    assert list(genotype.normal) == published["normal"]
    assert list(genotype.normal_concat) == published["normal_concat"]
    assert list(genotype.reduce) == published["reduce"]
    assert list(genotype.reduce_concat) == published["reduce_concat"]
    assert genotype == Genotype(**published)
    assert genotype.steps == 4


def test_named_genotypes_registry():
    assert NAMED_GENOTYPES == {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2}
    assert DARTS == DARTS_V2
    assert DARTS_V1 != DARTS_V2


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2])
def test_json_round_trip(genotype):
    text = genotype.to_json()
    again = Genotype.from_json(text)
    assert again == genotype
    assert hash(again) == hash(genotype)
    # The text is plain JSON: it survives a loads/dumps cycle and from_dict reads the object.
    data = json.loads(text)
    assert set(data) == {"normal", "normal_concat", "reduce", "reduce_concat"}
    assert data["normal"][0] == list(genotype.normal[0])
    assert Genotype.from_json(json.dumps(data)) == genotype
    assert Genotype.from_dict(data) == genotype
    assert genotype.to_dict() == data


def test_genotype_from_lists_equals_from_tuples_and_hashes():
    from_lists = Genotype(**valid())
    from_tuples = Genotype(
        normal=tuple(PUBLISHED_V2["normal"]), normal_concat=(2, 3, 4, 5),
        reduce=tuple(PUBLISHED_V2["reduce"]), reduce_concat=range(2, 6))
    assert from_lists == from_tuples == DARTS_V2
    assert hash(from_lists) == hash(from_tuples)
    assert len({from_lists, from_tuples, DARTS_V2, DARTS_V1}) == 2
    assert isinstance(from_lists.normal, tuple) and isinstance(from_lists.normal[0], tuple)
    assert isinstance(from_tuples.reduce_concat, tuple)


def test_genotype_is_frozen():
    with pytest.raises(AttributeError):
        DARTS_V2.normal = ()  # type: ignore[misc]


def test_node_index_out_of_range():
    normal = valid()["normal"]
    normal[0] = ["sep_conv_3x3", 3]  # node 2 may only take inputs 0 and 1
    with pytest.raises(ValueError, match=r"genotype\.normal\[0\]") as info:
        Genotype(**valid(normal=normal))
    assert "node 2" in str(info.value)
    reduce = valid()["reduce"]
    reduce[7] = ["max_pool_3x3", -1]
    with pytest.raises(ValueError, match=r"genotype\.reduce\[7\]"):
        Genotype(**valid(reduce=reduce))


def test_unknown_op():
    normal = valid()["normal"]
    normal[3] = ["conv_7x7", 1]
    with pytest.raises(ValueError, match="conv_7x7"):
        Genotype(**valid(normal=normal))


def test_odd_number_of_edges():
    with pytest.raises(ValueError, match=r"genotype\.normal.*7 edges"):
        Genotype(**valid(normal=valid()["normal"][:7]))
    with pytest.raises(ValueError, match=r"genotype\.reduce"):
        Genotype(**valid(reduce=[]))


def test_normal_and_reduce_with_different_node_counts():
    with pytest.raises(ValueError, match=r"genotype\.normal has 3 nodes.*genotype\.reduce has 4"):
        Genotype(**valid(normal=valid()["normal"][:6], normal_concat=[2, 3, 4]))


@pytest.mark.parametrize("concat", [[2, 3, 4, 6], [-1], []])
def test_concat_out_of_range(concat):
    with pytest.raises(ValueError, match=r"genotype\.reduce_concat"):
        Genotype(**valid(reduce_concat=concat))


def test_concat_that_is_not_a_list_of_ints():
    with pytest.raises(ValueError, match=r"genotype\.normal_concat"):
        Genotype(**valid(normal_concat=[2, "3"]))
    with pytest.raises(ValueError, match=r"genotype\.normal_concat"):
        Genotype(**valid(normal_concat=5))


def test_malformed_json_not_json():
    with pytest.raises(ValueError, match="malformed genotype JSON"):
        Genotype.from_json("{normal: oops")


def test_malformed_json_list():
    with pytest.raises(ValueError, match="object with exactly the keys.*list"):
        Genotype.from_json(json.dumps([["sep_conv_3x3", 0]]))


def test_malformed_json_missing_key():
    data = DARTS_V2.to_dict()
    del data["reduce_concat"]
    with pytest.raises(ValueError, match="reduce_concat"):
        Genotype.from_json(json.dumps(data))
    data = DARTS_V2.to_dict()
    data["extra"] = 1
    with pytest.raises(ValueError, match="extra"):
        Genotype.from_json(json.dumps(data))


@pytest.mark.parametrize("edge", [["sep_conv_3x3"], ["sep_conv_3x3", 0, 1], "sep_conv_3x3",
                                  [3, 0]])
def test_malformed_json_edge_not_a_pair(edge):
    data = DARTS_V2.to_dict()
    data["normal"][2] = edge
    with pytest.raises(ValueError, match=r"genotype\.normal\[2\]"):
        Genotype.from_json(json.dumps(data))


@pytest.mark.parametrize("index", ["0", 1.0, True, None])
def test_malformed_json_index_not_an_int(index):
    data = DARTS_V2.to_dict()
    data["reduce"][1] = ["max_pool_3x3", index]
    with pytest.raises(ValueError, match=r"genotype\.reduce\[1\]"):
        Genotype.from_json(json.dumps(data))


def test_small_and_large_genotypes_validate():
    one_node = Genotype(normal=[("skip_connect", 0), ("sep_conv_3x3", 1)], normal_concat=[2],
                        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)], reduce_concat=[2])
    assert one_node.steps == 1
    five = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4 + [("dil_conv_3x3", 5),
                                                              ("skip_connect", 4)]
    g = Genotype(normal=five, normal_concat=range(2, 7), reduce=five, reduce_concat=range(2, 7))
    assert g.steps == 5
    assert Genotype.from_json(g.to_json()) == g
