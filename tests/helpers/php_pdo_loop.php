<?php
// php_pdo_loop.php N: N connect / query / close with PDO (64-php).
$n = (int)$argv[1];
for ($i = 0; $i < $n; $i++) {
    $pdo = new PDO("pgsql:dbname=postgres");
    echo "backend ", $pdo->query("select pg_backend_pid()")->fetchColumn(), "\n";
    $pdo = null;
}
