"""Paper execution of MOD-011's follow signals: Hyperliquid order actions (``hyperliquid``), fills against
the replayed market (``market``), the backtest and its figures (``engine``), walk-forward
(``walkforward``), where signals come from (``signals``) and the report (``report``)."""
