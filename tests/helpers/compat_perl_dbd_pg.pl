# Compatibility row: Perl DBI with DBD::Pg (60-compat).
use strict;
use warnings;
use DBI;

my @dirty = split /;/, $ENV{COMPAT_DIRTY};
for my $i (1 .. 5) {
    my $dbh = DBI->connect("dbi:Pg:", "", "", {RaiseError => 1, AutoCommit => 1, PrintError => 0});
    my ($state) = $dbh->selectrow_array($ENV{COMPAT_CHECK});
    print "clean $state\n";
    $dbh->do($_) for @dirty;
    # A server-side prepared statement: DBD::Pg names it dbdpg_p<pid>_1 on
    # every new handle, so a reused session that kept it would fail here.
    my $sth = $dbh->prepare("select ?::int + 2");
    $sth->execute(40);
    my ($answer) = $sth->fetchrow_array;
    die "answer $answer" unless $answer == 42;
    $sth->finish;
    $dbh->disconnect;
}
print "done DBD::Pg $DBD::Pg::VERSION\n";
