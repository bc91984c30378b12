"""Neural-network layers with PyTorch's constructor arguments, defaults and state_dict keys;
the loss classes of :mod:`losses` and, in :mod:`nn.utils`, gradient clipping, where
PyTorch users look for them."""
# ruff: noqa: F401  (this file is the list of what ``nn`` exports)

from nn.module import Module, Parameter
from nn import functional, init
from nn.linear import Dropout, Flatten, Identity, Linear
from nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from nn.embedding import Embedding, PositionalEncoding
from nn.conv import AvgPool2d, Conv2d, MaxPool2d
from nn.container import MLP, ModuleDict, ModuleList, Sequential
from nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from nn.attention import MultiheadAttention
from nn.transformer import (
    Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
    TransformerEncoderLayer,
)
from nn import utils
from losses.modules import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
)
