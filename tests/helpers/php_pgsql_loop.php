<?php
// php_pgsql_loop.php N: N connect / query / close with the pgsql functions (64-php).
$n = (int)$argv[1];
for ($i = 0; $i < $n; $i++) {
    $c = pg_connect("dbname=postgres", PGSQL_CONNECT_FORCE_NEW);
    if (!$c) { fwrite(STDERR, "connect failed\n"); exit(1); }
    echo "backend ", pg_fetch_result(pg_query($c, "select pg_backend_pid()"), 0, 0), "\n";
    pg_close($c);
}
