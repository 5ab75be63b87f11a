<?php
// Compatibility row: PHP's pgsql functions (60-compat).
$dirty = explode(";", getenv("COMPAT_DIRTY"));
for ($i = 0; $i < 5; $i++) {
    if ($i < 4) {
        $c = pg_connect("dbname=postgres", PGSQL_CONNECT_FORCE_NEW);
    } else {
        // PQconnectStart + PQconnectPoll.
        $c = pg_connect("dbname=postgres", PGSQL_CONNECT_FORCE_NEW | PGSQL_CONNECT_ASYNC);
        for ($n = 0; $n < 1000; $n++) {
            $s = pg_connect_poll($c);
            if ($s == PGSQL_POLLING_OK) break;
            if ($s == PGSQL_POLLING_FAILED) { fwrite(STDERR, "async connect failed\n"); exit(1); }
            usleep(2000);
        }
    }
    if (!$c) { fwrite(STDERR, "connect failed\n"); exit(1); }
    echo "clean " . pg_fetch_result(pg_query($c, getenv("COMPAT_CHECK")), 0, 0) . "\n";
    foreach ($dirty as $s) { pg_query($c, $s) or exit(1); }
    // A named prepared statement, the same name on every connection.
    pg_prepare($c, "answer", 'select $1::int + 2') or exit(1);
    $r = pg_fetch_result(pg_execute($c, "answer", array(40)), 0, 0);
    if ($r != "42") { fwrite(STDERR, "bad answer $r\n"); exit(1); }
    pg_close($c);
}
echo "done php " . PHP_VERSION . "\n";
