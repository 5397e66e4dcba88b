"""The endpointing section of the agent file: defaults, and per-state overrides of its parts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voiceflow.config.endpointing import Endpointing
from voiceflow.config.models import TurnTaking


def test_adaptation_and_the_delivery_gap_are_on_by_default() -> None:
    endpointing = Endpointing()
    assert endpointing.adaptive.enabled
    assert endpointing.max_delivery_gap == 1.0
    assert endpointing.adaptive.max_silence >= endpointing.min_silence


def test_a_state_that_sets_one_adaptive_knob_keeps_the_agents_others() -> None:
    turn_taking = TurnTaking.model_validate({
        "endpointing": {"min_silence": 0.5, "adaptive": {"max_silence": 2.0, "margin": 0.2}},
        "states": {"digits": {"endpointing": {"min_silence": 1.5, "adaptive": {"enabled": False}}}},
    })
    digits = turn_taking.for_state("digits").endpointing
    assert digits.min_silence == 1.5 and not digits.adaptive.enabled
    assert digits.adaptive.max_silence == 2.0 and digits.adaptive.margin == 0.2
    assert digits.max_delivery_gap == 1.0
    assert turn_taking.for_state(None).endpointing.adaptive.enabled


@pytest.mark.parametrize(
    ("section", "field"),
    [({"adaptive": {"percentile": 1.5}}, ("adaptive", "percentile")),
     ({"adaptive": {"half_life": 0}}, ("adaptive", "half_life")),
     ({"max_delivery_gap": 0}, ("max_delivery_gap",)),
     ({"adaptive": {"enabled": "sometimes"}}, ("adaptive", "enabled"))],
)
def test_bad_values_name_the_field(section: dict[str, object], field: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        Endpointing.model_validate(section)
    assert [error["loc"] for error in caught.value.errors()] == [field]
