# Compatibility row: Ruby pg (60-compat).
require "pg"

dirty = ENV["COMPAT_DIRTY"].split(";")
5.times do |i|
  # pg >= 1.3 connects with PQconnectStartParams + PQconnectPoll.
  conn = PG.connect(dbname: "postgres")
  puts "clean " + conn.exec(ENV["COMPAT_CHECK"]).getvalue(0, 0)
  dirty.each { |s| conn.exec(s) }
  # A named prepared statement, the same name on every connection.
  conn.prepare("answer", "select $1::int + 2")
  raise "bad answer" unless conn.exec_prepared("answer", [40]).getvalue(0, 0) == "42"
  conn.close
end
puts "done pg #{PG::VERSION}"
