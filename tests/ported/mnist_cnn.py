"""A convolutional network for MNIST digits, written the way pytorch/examples' mnist/main.py
writes it: two 3x3 convolutions, max pooling, dropout, two linear layers, log-softmax and
the negative log-likelihood, trained with Adadelta and a StepLR schedule.

This file is a PyTorch program. Its tests run it as it is and, with only its import lines
changed, on xpgrad. With no MNIST files at hand it trains on random 28x28 images.
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch, callback=None):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback(epoch, batch_idx, loss)
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    return test_loss, correct


def random_digits(n, seed):
    """``n`` random images normalized with MNIST's mean and std, and random labels."""
    rng = np.random.default_rng(seed)
    images = torch.tensor(rng.random((n, 1, 28, 28)), dtype=torch.get_default_dtype())
    labels = torch.from_numpy(rng.integers(0, 10, size=n))
    images = (images - 0.1307) / 0.3081
    return TensorDataset(images, labels)


def make_parser():
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64, metavar='N',
                        help='training batch size (default: 64)')
    parser.add_argument('--test-batch-size', type=int, default=1000, metavar='N',
                        help='test batch size (default: 1000)')
    parser.add_argument('--epochs', type=int, default=14, metavar='N',
                        help='epochs to train (default: 14)')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                        help="Adadelta's learning rate (default: 1.0)")
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                        help='learning rate factor per epoch (default: 0.7)')
    parser.add_argument('--no-cuda', action='store_true', default=False,
                        help='train on the CPU even where a GPU is available')
    parser.add_argument('--dry-run', action='store_true', default=False,
                        help='one batch per epoch, to check the program runs')
    parser.add_argument('--seed', type=int, default=1, metavar='S',
                        help='seed (default: 1)')
    parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                        help='batches between progress lines')
    parser.add_argument('--train-size', type=int, default=640, metavar='N',
                        help='number of random training images (default: 640)')
    parser.add_argument('--save-model', action='store_true', default=False,
                        help='save the trained state dict to mnist_cnn.pt')
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    use_cuda = not args.no_cuda and torch.cuda.is_available()

    torch.manual_seed(args.seed)

    device = torch.device("cuda" if use_cuda else "cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_cuda:
        cuda_kwargs = {'num_workers': 1,
                       'pin_memory': True,
                       'shuffle': True}
        train_kwargs.update(cuda_kwargs)
        test_kwargs.update(cuda_kwargs)

    dataset1 = random_digits(args.train_size, seed=args.seed)
    dataset2 = random_digits(args.train_size // 6, seed=args.seed + 1)
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")
    return model


if __name__ == '__main__':
    main()
