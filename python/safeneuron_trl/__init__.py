"""SafeNeuron's TRL bridge: DPO in TRL's DPOTrainer with the safety neurons of a `neurons.json` frozen
(their gate_proj/up_proj rows and down_proj column never change) and ablated per `safeneuron align`'s schedule,
or trained alone (SN-Tune). The conventions (tokenisation, truncation, reference states, data order, ablation
draws, optimizer masks) are those of the Swift `safeneuron align`; see README.md."""

from .neurons import NeuronsFileError, read_neuron_set
from .schedule import AblationSchedule, SplitMix64, epoch_order

__all__ = ["NeuronsFileError", "read_neuron_set", "AblationSchedule", "SplitMix64", "epoch_order"]
