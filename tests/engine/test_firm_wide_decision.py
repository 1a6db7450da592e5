"""Cutting a decision down to what the limits shared with other sidecars granted."""

from riskbudget_sidecar.engine.checks import firm_wide_decision
from riskbudget_sidecar.engine.types import Decision, FirmGrant, FirmLimits, ReasonCode
from tests.engine.builders import order
from tests.store.builders import decision

FIRM = FirmLimits(reference_price=100.0, lot_size=1.0, symbol_limit=50_000.0, total_limit=1_000_000.0)


def test_a_full_grant_leaves_the_decision_as_it_was():
    approved = decision(order(quantity=100))

    assert firm_wide_decision(approved, FirmGrant(100.0), FIRM) is approved


def test_a_partial_grant_resizes_and_names_the_firm_wide_symbol_limit():
    cut = firm_wide_decision(decision(order(quantity=100)),
                             FirmGrant(40.0, symbol_limited=True, symbol_value=60_000.0), FIRM)

    assert (cut.decision, cut.approved_quantity, cut.reserved) == (Decision.RESIZED, 40.0, True)
    assert [(r.code, r.limit, r.value) for r in cut.reasons] == [
        (ReasonCode.SYMBOL_POSITION_LIMIT, 50_000.0, 60_000.0)]
    assert "firm-wide" in cut.reasons[0].message


def test_a_grant_below_one_lot_rejects_and_reserves_nothing():
    cut = firm_wide_decision(decision(order(quantity=100)),
                             FirmGrant(0.0, total_limited=True, total_value=1_200_000.0), FIRM)

    assert (cut.decision, cut.approved_quantity, cut.reserved) == (Decision.REJECTED, 0.0, False)
    assert cut.reservation_expires_at is None
    assert [r.code for r in cut.reasons] == [ReasonCode.TOTAL_LEVERAGE_LIMIT]


def test_in_shadow_mode_the_decision_stands_and_says_what_the_cut_would_be():
    approved = decision(order(quantity=100))

    shadow = firm_wide_decision(approved, FirmGrant(0.0, symbol_limited=True), FIRM, shadow=True)

    assert (shadow.decision, shadow.approved_quantity) == (approved.decision, 100.0)
    assert shadow.shadow_decision is Decision.REJECTED
