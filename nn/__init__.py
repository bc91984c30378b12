"""Neural-network layers with PyTorch's constructor arguments, defaults and state_dict keys."""

from nn.module import Module, Parameter
from nn import functional, init
from nn.linear import Identity, Linear
from nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from nn.dropout import Dropout
from nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from nn.embedding import Embedding
from nn.container import MLP, ModuleDict, ModuleList, Sequential

__all__ = [
    "Module", "Parameter", "functional", "init",
    "Identity", "Linear",
    "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Dropout",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm",
    "Embedding",
    "MLP", "ModuleDict", "ModuleList", "Sequential",
]
from nn.rnn import LSTM, LSTMCell
