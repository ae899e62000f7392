package storetest

import (
	"database/sql"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

func openPG(dsn string) (*sql.DB, error) { return sql.Open("pgx", dsn) }
