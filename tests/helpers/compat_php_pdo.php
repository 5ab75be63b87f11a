<?php
// Compatibility row: PHP PDO pgsql (60-compat).
$dirty = explode(";", getenv("COMPAT_DIRTY"));
for ($i = 0; $i < 5; $i++) {
    $pdo = new PDO("pgsql:dbname=postgres", null, null, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    echo "clean " . $pdo->query(getenv("COMPAT_CHECK"))->fetchColumn() . "\n";
    foreach ($dirty as $s) { $pdo->exec($s); }
    $st = $pdo->prepare('select ?::int + 2');
    $st->execute([40]);
    if ($st->fetchColumn() != 42) { fwrite(STDERR, "bad answer\n"); exit(1); }
    $st = null;
    $pdo = null;
}
echo "done pdo " . PHP_VERSION . "\n";
