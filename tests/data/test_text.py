"""Tokenizer and pad_sequences against Keras's documented semantics; CharTokenizer."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data import KERAS_FILTERS, CharTokenizer, Tokenizer, pad_sequences, text_to_word_sequence

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "cat, CAT; cat?"]


# ---------------------------------------------------------------- word splitting

def test_text_to_word_sequence_filters_and_lower():
    assert text_to_word_sequence("Hello, World! e-mail\tdon't") == \
        ["hello", "world", "e", "mail", "don't"]          # apostrophe is not filtered
    assert text_to_word_sequence("A b", lower=False) == ["A", "b"]
    assert text_to_word_sequence("a.b|c", filters=".", split="|") == ["a", "b", "c"]
    assert text_to_word_sequence("x!!y", filters="") == ["x!!y"]
    assert set('!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n') == set(KERAS_FILTERS)


# ---------------------------------------------------------------- Tokenizer

def test_word_index_frequency_order_ties_by_first_appearance():
    tok = Tokenizer().fit_on_texts(TEXTS)
    # counts: cat 4, the 3, then all 1s in order of first appearance
    assert list(tok.word_index.items()) == [
        ("cat", 1), ("the", 2), ("sat", 3), ("on", 4), ("mat", 5), ("dog", 6), ("ate", 7),
        ("my", 8), ("homework", 9)]
    assert tok.index_word[1] == "cat"
    assert tok.word_counts["the"] == 3 and tok.word_docs["cat"] == 2
    assert tok.document_count == 3
    assert tok.texts_to_sequences(["the CAT sat on a mat"]) == [[2, 1, 3, 4, 5]]  # "a" dropped


def test_oov_token_takes_index_one():
    tok = Tokenizer(oov_token="<OOV>").fit_on_texts(TEXTS)
    assert tok.word_index["<OOV>"] == 1 and tok.word_index["cat"] == 2
    assert tok.texts_to_sequences(["the zebra ate"]) == [[3, 1, 8]]
    assert tok.sequences_to_texts([[3, 1, 8]]) == ["the <OOV> ate"]


def test_num_words_caps_emitted_indices():
    tok = Tokenizer(num_words=3).fit_on_texts(["a a a b b c"])
    assert tok.word_index == {"a": 1, "b": 2, "c": 3}        # the index keeps every word
    assert tok.texts_to_sequences(["a b c d"]) == [[1, 2]]    # 3 >= num_words: dropped
    assert tok.sequences_to_texts([[1, 2, 3]]) == ["a b"]
    assert tok.vocab_size == 3
    oov = Tokenizer(num_words=3, oov_token="?").fit_on_texts(["a a a b b c"])
    # the OOV token counts toward num_words, as in Keras: only "a" (index 2) survives
    assert oov.word_index == {"?": 1, "a": 2, "b": 3, "c": 4}
    assert oov.texts_to_sequences(["a b c d"]) == [[2, 1, 1, 1]]
    assert oov.sequences_to_texts([[2, 3, 0]]) == ["a ? ?"]


def test_lower_false_and_custom_filters_and_stop_words():
    tok = Tokenizer(lower=False, filters="").fit_on_texts(["The the THE the the!"])
    assert tok.word_index == {"the": 1, "The": 2, "THE": 3, "the!": 4}
    sw = Tokenizer(stop_words=["The", "on"]).fit_on_texts(TEXTS)
    assert "the" not in sw.word_index and "on" not in sw.word_index
    assert sw.texts_to_sequences(["the cat on mat"]) == [[sw.word_index["cat"],
                                                         sw.word_index["mat"]]]


def test_fit_twice_accumulates_and_list_input():
    tok = Tokenizer().fit_on_texts(["b"])
    tok.fit_on_texts([["A", "b"], "a a"])      # a pre-split text is lower-cased too
    assert tok.word_index == {"a": 1, "b": 2} and tok.document_count == 3
    with pytest.raises(TypeError, match="list of texts"):
        tok.fit_on_texts("just one string")


def test_texts_to_matrix_modes():
    tok = Tokenizer().fit_on_texts(["a a b", "b c"])
    counts = tok.texts_to_matrix(["a a b", "d"], mode="count")
    assert counts.dtype == np.float32 and counts.shape == (2, 4)
    np.testing.assert_array_equal(counts, [[0, 2, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(tok.texts_to_matrix(["a a b"]), [[0, 1, 1, 0]])
    np.testing.assert_allclose(tok.texts_to_matrix(["a a b"], mode="freq"),
                               [[0, 2 / 3, 1 / 3, 0]], rtol=1e-6)
    tfidf = tok.texts_to_matrix(["a a b"], mode="tfidf")
    expected_a = (1 + np.log(2)) * np.log(1 + 2 / (1 + 1))
    expected_b = 1.0 * np.log(1 + 2 / (1 + 2))
    np.testing.assert_allclose(tfidf, [[0, expected_a, expected_b, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown mode"):
        tok.texts_to_matrix(["a"], mode="onehot")


def test_json_round_trip(tmp_path):
    tok = Tokenizer(num_words=5, oov_token="<unk>", stop_words=["on"]).fit_on_texts(TEXTS)
    again = Tokenizer.from_json(tok.to_json())
    assert again.word_index == tok.word_index and again.index_word == tok.index_word
    assert again.num_words == 5 and again.oov_token == "<unk>" and again.stop_words == ["on"]
    probe = ["the unseen cat on homework"]
    assert again.texts_to_sequences(probe) == tok.texts_to_sequences(probe)
    path = tmp_path / "vocab.json"
    tok.save(path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["class_name"] == "Tokenizer"
    assert payload["config"]["word_index"]["cat"] == tok.word_index["cat"]
    assert Tokenizer.load(path).word_counts == tok.word_counts


def test_reads_keras_json_layout():
    # Keras's to_json nests the dictionaries as JSON strings
    config = {"num_words": None, "filters": KERAS_FILTERS, "lower": True, "split": " ",
              "char_level": False, "oov_token": None, "document_count": 1,
              "word_counts": json.dumps({"hi": 2, "yo": 1}),
              "word_docs": json.dumps({"hi": 1, "yo": 1}),
              "index_docs": json.dumps({"1": 1, "2": 1}),
              "index_word": json.dumps({"1": "hi", "2": "yo"}),
              "word_index": json.dumps({"hi": 1, "yo": 2})}
    tok = Tokenizer.from_json(json.dumps({"class_name": "Tokenizer", "config": config}))
    assert tok.texts_to_sequences(["Yo hi"]) == [[2, 1]]
    with pytest.raises(ValueError, match="not a tokenizer JSON"):
        Tokenizer.from_json("[1, 2]")


# ---------------------------------------------------------------- pad_sequences

SEQS = [[1], [2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("padding,truncating,expected", [
    ("pre", "pre", [[0, 0, 1], [0, 2, 3], [5, 6, 7]]),
    ("pre", "post", [[0, 0, 1], [0, 2, 3], [4, 5, 6]]),
    ("post", "pre", [[1, 0, 0], [2, 3, 0], [5, 6, 7]]),
    ("post", "post", [[1, 0, 0], [2, 3, 0], [4, 5, 6]]),
])
def test_pad_sequences_four_combinations(padding, truncating, expected):
    out = pad_sequences(SEQS, maxlen=3, padding=padding, truncating=truncating)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_pad_sequences_defaults_value_dtype():
    np.testing.assert_array_equal(pad_sequences(SEQS),
                                  [[0, 0, 0, 1], [0, 0, 2, 3], [4, 5, 6, 7]])
    out = pad_sequences(SEQS, maxlen=2, value=-1, padding="post")
    np.testing.assert_array_equal(out, [[1, -1], [2, 3], [6, 7]])
    f = pad_sequences([[0.5, 1.5], []], maxlen=3, dtype="float32", value=9.0)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, [[9.0, 0.5, 1.5], [9.0, 9.0, 9.0]])
    np.testing.assert_array_equal(pad_sequences([[0.7, 2.2]]), [[0, 2]])  # int32 truncates
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([]).shape == (0, 0)


def test_pad_sequences_item_shape_and_errors():
    seqs = [np.ones((2, 3)), np.zeros((1, 3))]
    out = pad_sequences(seqs, maxlen=3, dtype="float32", padding="post")
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])
    np.testing.assert_array_equal(out[0, :2], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"sequence 1 has items of shape \(2,\)"):
        pad_sequences([np.ones((2, 3)), np.ones((1, 2))])
    with pytest.raises(ValueError, match='padding type "middle"'):
        pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match='truncating type "both"'):
        pad_sequences(SEQS, truncating="both")
    with pytest.raises(ValueError, match="non-iterable 5"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="is a string"):
        pad_sequences(SEQS, value="x")


@given(seqs=st.lists(st.lists(st.integers(1, 99), max_size=7), min_size=1, max_size=6),
       maxlen=st.one_of(st.none(), st.integers(1, 8)), value=st.integers(-3, 0),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]))
def test_pad_sequences_definition(seqs, maxlen, value, padding, truncating):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating,
                        value=value)
    width = max(len(s) for s in seqs) if maxlen is None else maxlen
    assert out.shape == (len(seqs), width)
    for row, s in zip(out.tolist(), seqs):
        kept = (s[-width:] if truncating == "pre" else s[:width]) if s else []
        fill = [value] * (width - len(kept))
        assert row == (fill + kept if padding == "pre" else kept + fill)


# ---------------------------------------------------------------- CharTokenizer

def test_char_tokenizer_roundtrip_and_specials(tmp_path):
    tok = CharTokenizer(specials=("<pad>", "<bos>", "<eos>")).fit("hello world")
    assert tok.itos[:3] == ["<pad>", "<bos>", "<eos>"]
    assert tok.itos[3:] == sorted(set("hello world"))
    assert len(tok) == tok.vocab_size == 3 + 8
    ids = tok.encode("hello", add_bos=True, add_eos=True)
    assert ids.dtype == np.int64 and ids[0] == 1 and ids[-1] == 2
    assert tok.decode(ids) == "hello"
    assert tok.decode(ids, skip_specials=False) == "<bos>hello<eos>"
    assert tok.decode(np.append(ids, tok.encode("lol")), stop_at_eos=True) == "hello"
    path = tmp_path / "chars.json"
    tok.save(path)
    again = CharTokenizer.load(path)
    assert again.itos == tok.itos and again.decode(again.encode("old")) == "old"


def test_char_tokenizer_unknown_and_lower():
    tok = CharTokenizer(chars="abc")
    assert tok.encode("cab").tolist() == [2, 0, 1]
    with pytest.raises(KeyError, match=r"\['z'\]"):
        tok.encode("abz")
    unk = CharTokenizer(chars="abc", unk_token="?", lower=True)
    assert unk.decode(unk.encode("AzB")) == "a?b"
    with pytest.raises(KeyError, match="<bos>"):
        tok.encode("a", add_bos=True)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        tok.decode([7])
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer(specials=("<pad>", "<pad>"))
    with pytest.raises(ValueError, match="not a CharTokenizer JSON"):
        CharTokenizer.from_json("{}")
