"""Neural-network layers, losses and containers, PyTorch-shaped: ``from chainrule import nn``.

Each layer module declares its public names once, in its ``__all__``; this package re-exports them.
"""

from chainrule.nn import (
    activation,
    conv,
    dropout,
    embedding,
    functional,
    init,
    linear,
    loss,
    module,
    normalization,
    pooling,
    recurrent,
    utils,
)
from chainrule.nn.activation import *  # noqa: F403
from chainrule.nn.conv import *  # noqa: F403
from chainrule.nn.dropout import *  # noqa: F403
from chainrule.nn.embedding import *  # noqa: F403
from chainrule.nn.linear import *  # noqa: F403
from chainrule.nn.loss import *  # noqa: F403
from chainrule.nn.module import *  # noqa: F403
from chainrule.nn.normalization import *  # noqa: F403
from chainrule.nn.pooling import *  # noqa: F403
from chainrule.nn.recurrent import *  # noqa: F403

__all__ = ["functional", "init", "utils"]
__all__ += module.__all__
__all__ += linear.__all__
__all__ += conv.__all__
__all__ += pooling.__all__
__all__ += dropout.__all__
__all__ += normalization.__all__
__all__ += embedding.__all__
__all__ += recurrent.__all__
__all__ += activation.__all__
__all__ += loss.__all__
