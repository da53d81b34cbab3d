"""Operations beside the stores: the servers of the distributed mode started on this machine (`servers`:
PostgreSQL, an MLflow tracking server, optuna-dashboard; `make cluster-up`, `cluster-down`, `dashboard`), the
MLflow UI with links to each study's trials (`mlflow_ui`: `make ui`, the links a sweep prints, a browser
opened), and the processes behind them (`process`). Imports `stores`; nothing in `stores` imports it."""
