// The sqlite schema of coffer as an ordered list of migrations. The database records the last
// one applied in `PRAGMA user_version`; SqliteStorage::open applies the missing ones, each in
// its own transaction, and refuses a database newer than this list.
// Rules for editing: never change or reorder a shipped migration; append a new one with the
// next version number. Each must be safe to run exactly once on the previous version.
#pragma once

#include <span>

namespace coffer::storage {

struct Migration {
  int version;              // 1, 2, ... (contiguous); becomes PRAGMA user_version when applied
  const char* description;  // shown in errors ("migration to schema version 2 (...) failed")
  const char* sql;          // one or more statements, run inside one transaction
};

std::span<const Migration> schema_migrations();

// The newest schema version this build knows (the last migration's version).
int latest_schema_version();

}  // namespace coffer::storage
