"""Datasets, DataLoader, splits, text tokenization and padding, readers, built-in data.

Arrays to batches (``TensorDataset`` is gathered a batch at a time)::

    from data import DataLoader, TensorDataset, train_test_split
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, seed=0)
    engine.manual_seed(0)                      # also fixes the shuffling order
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True,
                        device="cpu")
    for xb, yb in loader: ...                  # Tensors; one pass is one epoch

Text classification (Keras's pipeline)::

    texts, labels = read_text_csv("reviews.csv", text_column="text", label_column="label")
    y = LabelEncoder().fit_transform(labels)                 # int64 class indices
    tok = Tokenizer(num_words=10_000, oov_token="<OOV>").fit_on_texts(texts)
    x = pad_sequences(tok.texts_to_sequences(texts), maxlen=100)   # int32 (N, 100), 0 = pad
    # Embedding(tok.vocab_size, 128); tok.save("vocab.json") / Tokenizer.load(...)
    texts, y = make_negation_sentiment(10_000, seed=0)      # built-in, needs word order

Images: ``load_digits()`` (float32 (1797, 8, 8) in [0, 1]), ``load_mnist(dir)``,
``ImageFolder(root, transform=transforms.Compose([...]))``. Sequence-to-sequence:
``make_reverse_task`` / ``make_sort_task`` / ``make_addition_task`` then ``task.encode()``.
Character language model: ``text = load_text_corpus()``, ``CharTokenizer().fit(text)``.

Modules: :mod:`data.dataset` (Dataset, TensorDataset, Subset, random_split),
:mod:`data.loader` (DataLoader, default_collate), :mod:`data.split` (train_test_split),
:mod:`data.text` (Tokenizer, pad_sequences), :mod:`data.chars` (CharTokenizer),
:mod:`data.readers` (CSV, IDX, MNIST, LabelEncoder), :mod:`data.images` (ImageFolder),
:mod:`data.transforms` (image transforms), :mod:`data.builtin` (load_digits,
load_text_corpus), :mod:`data.synthetic` (generated sequence tasks and the negation
sentiment task).
"""

from data import transforms
from data.builtin import load_digits, load_text_corpus
from data.dataset import Dataset, Subset, TensorDataset, batch_fetcher, random_split
from data.images import IMG_EXTENSIONS, ImageFolder
from data.loader import DataLoader, default_collate, move_to_device
from data.readers import LabelEncoder, load_mnist, read_idx, read_text_csv
from data.split import train_test_split
from data.synthetic import (
    BOS, EOS, PAD, SequenceTask, make_addition_task, make_negation_sentiment,
    make_reverse_task, make_sort_task, negation_sentiment_label, sequence_task_tokenizer,
)
from data.text import KERAS_FILTERS, Tokenizer, pad_sequences, text_to_word_sequence
from data.chars import CharTokenizer

__all__ = [
    "Dataset", "TensorDataset", "Subset", "random_split", "batch_fetcher",
    "DataLoader", "default_collate", "move_to_device", "train_test_split",
    "Tokenizer", "CharTokenizer", "pad_sequences", "text_to_word_sequence", "KERAS_FILTERS",
    "read_text_csv", "LabelEncoder", "read_idx", "load_mnist",
    "ImageFolder", "IMG_EXTENSIONS", "transforms",
    "load_digits", "load_text_corpus",
    "SequenceTask", "make_reverse_task", "make_sort_task", "make_addition_task",
    "sequence_task_tokenizer", "make_negation_sentiment", "negation_sentiment_label",
    "PAD", "BOS", "EOS",
]
