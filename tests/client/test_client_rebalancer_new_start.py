"""A new rebalancer (no checkpoint) takes the newest sequence before it reads the budget: found by a
reviewer, when it read the budget first and its feed then asked GetStatus, a recommendation made
between the two was in neither, and was never handled."""

import threading

from .test_client_rebalancer_example import budget, rebalancer, recommendation


def test_a_recommendation_made_between_the_budget_and_the_feeds_start_is_handled(
    log_sidecar, log_server, tmp_path
):
    log_sidecar.log = [recommendation(s, [("mom", "SPY", 0.1)], []) for s in (10, 11, 12)]
    log_sidecar.log_id = "c3"
    log_sidecar.budget = budget(9, 1e7, {"mom": (1e6, {"SPY": 1.0})})
    between = recommendation(13, [("mom", "SPY", 0.3)], [("mom", "SPY", 0.1)])
    later = recommendation(14, [("mom", "SPY", 0.3)], [("mom", "SPY", 0.1)])

    def made_now(feed):  # after GetBudget, before the feed's GetStatus
        log_sidecar.log.append(between)
        log_sidecar.publish()
        threading.Timer(0.3, lambda: log_sidecar.log.append(later) or log_sidecar.publish()).start()

    printed = []
    status = rebalancer.run(log_server.target, tmp_path / "rebal.seq", {("mom", "SPY"): 0.5},
                            limit=1, out=printed.append, on_feed=made_now)

    assert status == 0
    assert rebalancer.read_checkpoint(tmp_path / "rebal.seq").sequence == 13, printed
