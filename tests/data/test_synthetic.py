"""Built-in data: digits, offline corpora, generated sequence tasks, negation sentiment."""

import sys

import numpy as np
import pytest

import engine
from data import (
    BOS, EOS, PAD, Tokenizer, load_digits, load_text_corpus, make_addition_task,
    make_negation_sentiment, make_reverse_task, make_sort_task, negation_sentiment_label,
    sequence_task_tokenizer,
)
from data.synthetic import NEGATIONS, NEGATIVE, POSITIVE

# ---------------------------------------------------------------- digits and corpora


def test_load_digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits as sk_digits

    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    ref = sk_digits()
    np.testing.assert_allclose(images * 16, ref.images, atol=1e-5)
    np.testing.assert_array_equal(labels, ref.target)


def test_load_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"needs scikit-learn.*xpgrad\[examples\]"):
        load_digits()


def test_text_corpora():
    docs = load_text_corpus()
    assert isinstance(docs, str) and len(docs) > 100_000
    assert "The \"if\" statement" in docs
    zen = load_text_corpus("zen")
    assert zen.startswith("The Zen of Python, by Tim Peters")
    assert "Beautiful is better than ugly." in zen
    assert load_text_corpus("zen", max_chars=10) == zen[:10]
    with pytest.raises(ValueError, match="unknown corpus 'shakespeare'"):
        load_text_corpus("shakespeare")


def test_sklearn_corpus():
    pytest.importorskip("sklearn")
    text = load_text_corpus("sklearn")
    assert "Optical recognition of handwritten digits dataset" in text and len(text) > 10_000


# ---------------------------------------------------------------- sequence tasks

def test_sequence_vocabulary():
    tok = sequence_task_tokenizer()
    assert tok.itos[:3] == [PAD, BOS, EOS] and tok.index(PAD) == 0
    assert len(tok) == 14 and set(tok.itos[3:]) == set("0123456789+")


@pytest.mark.parametrize("make,rule", [
    (make_reverse_task, lambda s: s[::-1]),
    (make_sort_task, lambda s: "".join(sorted(s))),
])
def test_reverse_and_sort_tasks(make, rule):
    task = make(200, min_len=2, max_len=6, seed=0)
    assert len(task) == 200
    assert all(t == rule(s) for s, t in zip(task.sources, task.targets))
    assert {len(s) for s in task.sources} == set(range(2, 7))
    assert all(s.isdigit() for s in task.sources)
    src, tgt = task.encode()
    assert src.dtype == tgt.dtype == np.int64
    assert src.shape == (200, 6) and tgt.shape == (200, 8)
    k = int(np.argmin([len(s) for s in task.sources]))
    assert task.tokenizer.decode(src[k]) == task.sources[k]
    assert tgt[k, 0] == 1 and tgt[k, len(task.targets[k]) + 1] == 2       # <bos> ... <eos>
    assert (tgt[k, len(task.targets[k]) + 2:] == 0).all()                 # then <pad>
    assert [task.decode(row) for row in tgt] == task.targets
    again = make(200, min_len=2, max_len=6, seed=0)
    assert again.sources == task.sources


def test_addition_task():
    task = make_addition_task(300, max_digits=3, seed=1)
    for s, t in zip(task.sources, task.targets):
        a, b = s.split("+")
        assert int(a) + int(b) == int(t) and len(a) <= 3 and len(b) <= 3
        assert str(int(a)) == a                              # no leading zeros
    widths = [len(s.split("+")[0]) for s in task.sources]
    assert set(widths) == {1, 2, 3}
    src, tgt = task.encode(src_len=5, tgt_len=4)
    assert src.shape == (300, 5) and tgt.shape == (300, 4)
    with pytest.raises(ValueError, match="max_digits"):
        make_addition_task(3, max_digits=0)


def test_tasks_follow_engine_seed():
    engine.manual_seed(11)
    a = make_reverse_task(20)
    engine.manual_seed(11)
    b = make_reverse_task(20)
    c = make_reverse_task(20)
    assert a.sources == b.sources and a.sources != c.sources
    with pytest.raises(ValueError, match="min_len"):
        make_sort_task(3, min_len=4, max_len=2)


# ---------------------------------------------------------------- negation sentiment

def test_negation_sentiment_follows_its_grammar():
    texts, labels = make_negation_sentiment(2000, seed=0, although=True)
    assert len(texts) == 2000 and labels.dtype == np.int64
    assert [negation_sentiment_label(t) for t in texts] == labels.tolist()
    assert abs(labels.mean() - 0.5) < 0.05
    assert sum("although" in t for t in texts) > 1000
    plain, _ = make_negation_sentiment(200, seed=0)
    assert all(" but " in t and "although" not in t for t in plain)
    assert negation_sentiment_label("the food was not good but the service was great") == 1
    assert negation_sentiment_label("the wine is superb but the staff was never friendly") == 0
    assert negation_sentiment_label("although the soup was bad , the view is lovely") == 1
    assert negation_sentiment_label("the soup was bad although the view is lovely") == 0


def test_negation_needs_negation_and_order():
    texts, labels = make_negation_sentiment(1000, seed=1)
    negated = [t for t in texts if any(f" {w} " in f" {t} " for w in NEGATIONS)]
    assert len(negated) > 500
    # the adjective after "but" alone is right only when it is not negated
    def adjective_after_but(text):
        words = text.split()[text.split().index("but"):]
        return 1 if any(w in POSITIVE for w in words) else 0
    agree = np.mean([adjective_after_but(t) == y for t, y in zip(texts, labels)])
    assert 0.35 < agree < 0.65
    assert all(any(w in POSITIVE or w in NEGATIVE for w in t.split()) for t in texts)


@pytest.mark.parametrize("although", [False, True])
def test_bag_of_words_classifier_stays_near_chance(although):
    linear = pytest.importorskip("sklearn.linear_model")
    texts, labels = make_negation_sentiment(4000, seed=2, although=although)
    tok = Tokenizer().fit_on_texts(texts[:3000])
    for mode in ("binary", "count"):
        x = tok.texts_to_matrix(texts, mode=mode)
        model = linear.LogisticRegression(max_iter=1000).fit(x[:3000], labels[:3000])
        accuracy = model.score(x[3000:], labels[3000:])
        assert accuracy < 0.58, (mode, accuracy)        # chance is 0.5 exactly in expectation


def test_word_order_features_recover_the_label():
    """Word trigrams ("not good but", "but the ...") see order, and that is enough."""
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = make_negation_sentiment(4000, seed=2)
    vec = CountVectorizer(ngram_range=(1, 3)).fit(texts[:3000])
    model = LogisticRegression(max_iter=1000).fit(vec.transform(texts[:3000]), labels[:3000])
    assert model.score(vec.transform(texts[3000:]), labels[3000:]) > 0.85


def test_same_words_both_labels():
    """Each sentence's word multiset occurs with the other label after swapping its clauses."""
    texts, labels = make_negation_sentiment(300, seed=3)
    for text, label in zip(texts[:50], labels[:50]):
        head, tail = text.split(" but ")
        opener = ""
        if not head.startswith("the "):
            opener, head = head.split(" the ", 1)
            opener, head = opener + " ", "the " + head
        swapped = f"{opener}{tail} but {head}"
        assert sorted(swapped.split()) == sorted(text.split())
        assert negation_sentiment_label(swapped) == 1 - label
