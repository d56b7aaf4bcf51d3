import pytest

from safeneuron_trl.trainer import refuse_unsupported


def test_zero3_is_refused_with_what_to_use_instead():
    with pytest.raises(ValueError, match="ZeRO-3 is not supported.*Use ZeRO-2"):
        refuse_unsupported(3, False, None)


def test_sn_tune_under_deepspeed_is_refused():
    with pytest.raises(ValueError, match="SN-Tune.*plain DDP"):
        refuse_unsupported(2, True, None)


def test_fsdp_is_refused():
    with pytest.raises(ValueError, match="FSDP"):
        refuse_unsupported(None, False, "full_shard")


def test_ddp_and_zero2_freeze_are_accepted():
    refuse_unsupported(None, False, None)
    refuse_unsupported(None, True, None)
    refuse_unsupported(2, False, None)
