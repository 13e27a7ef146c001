"""Stacked ensembles: N cells trained as one *stack*, each bit for bit as it would train alone.

Cells that differ only in their seed (or in a loss of the same structure, such as minimax and -log D) run
the same Algorithm 1 on different numbers, so ``bench.train.train_ensemble`` trains them as one: each step
makes one call per network and one optimizer step for all N instead of N of each. How N cells become one
stack, and back:

1. Grouping (``stack_key``): cells with one key (every setting equal but the loss, and losses of one
   ``GANLoss.structure``) may share a stack; ``bench.scheduler`` groups them so.
2. Networks (``stack``): N networks of one architecture become one module on a leading member dimension,
   ``(N, batch, ...) -> (N, batch, ...)``. An architecture whose class has a ``stacked(members)``
   constructor gives its batched form, even for one member (the MLPs: ``bench.models.mlp.StackedMLP``); any
   other trains alone, wrapped by ``Single``. Every product runs per member (``per_member``), never as one
   batched kernel, whose rounding could depend on N (so not ``torch.func.vmap`` either).
3. Losses (``stack_losses``): the members' losses as one ``GANLoss`` with one value per member; the
   gradient of their sum is each member's own gradient, as members share no parameters.
4. Optimizers (``FlatParameters``): a stack's weights in one buffer, handed to the optimizer as one tensor
   per member, so each member's update runs through the kernel calls it would run alone.
5. Back: ``stack.sync_members()`` copies each member's current weights into its plain network,
   ``stack.members[i]``, which evaluation and checkpoints look at; each member keeps its own random
   streams and records and ends as its own ``RunResult`` (``bench.train``).

``tests/test_train.py`` checks that a cell trains bitwise the same alone, stacked, and at another place
in another stack.
"""

from bench.ensemble.grouping import member_losses, stack_key
from bench.ensemble.losses import stack_losses
from bench.ensemble.modules import Single, per_member, scores_each_sample_alone, stack, stackable
from bench.ensemble.parameters import FlatParameters

__all__ = ["FlatParameters", "Single", "member_losses", "per_member", "scores_each_sample_alone", "stack",
           "stack_key", "stack_losses", "stackable"]
