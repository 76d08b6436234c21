-- The warehouse database the uci_exhaust DAG loads (beside Airflow's own metadata database).
CREATE DATABASE warehouse;
