// SqliteStorage on a real file in a temp dir: opening (modes, pragmas, refusals), migrations,
// CRUD of every table, Vault LIST shapes, token trees and the expiry sweep, concurrency.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "storage/sqlite_schema.h"
#include "storage/sqlite_storage.h"
#include "tests/unit/storage/storage_test_util.h"

namespace coffer::storage {
namespace {

using coffer::testing::file_bytes;
using coffer::testing::RawDb;
using coffer::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::unique_ptr<SqliteStorage> must_open(const std::string& path) {
  auto s = SqliteStorage::open(path, true);
  EXPECT_OK(s);
  return s.ok() ? std::move(s).value() : nullptr;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0xffff;
  return st.st_mode & 0777;
}

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// The stand-in "HMAC" of token number `id`: 32 copies of the byte.
std::vector<std::uint8_t> hash(int id) { return std::vector<std::uint8_t>(32, static_cast<std::uint8_t>(id)); }

TEST(SqliteStorageOpen, CreatesSchemaAndSetsPragmasOnTheLiveConnection) {
  TempDir dir;
  auto db = must_open(dir.file("coffer.db"));
  ASSERT_NE(db, nullptr);
  auto s = db->settings();
  ASSERT_OK(s);
  EXPECT_EQ(s->journal_mode, "wal");
  EXPECT_EQ(s->synchronous, 2);  // FULL
  EXPECT_TRUE(s->foreign_keys);
  EXPECT_TRUE(s->secure_delete);
  EXPECT_GT(s->busy_timeout_ms, 0);
  EXPECT_EQ(s->user_version, latest_schema_version());

  RawDb raw(dir.file("coffer.db"));
  EXPECT_EQ(raw.text("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                     "WHERE type = 'table' ORDER BY name)"),
            "approle_roles,approle_secret_id_tokens,approle_secret_ids,cert_roles,keyring,meta,"
            "policies,request_nonces,secrets,tokens,wrapped_responses");
  // WAL is a property of the file too: a second connection sees it.
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
}

TEST(SqliteStorageOpen, CreatesFileMode0600EvenUnderAPermissiveUmask) {
  TempDir dir;
  const mode_t old = ::umask(0);
  auto db = must_open(dir.file("coffer.db"));
  ::umask(old);
  ASSERT_NE(db, nullptr);
  ASSERT_OK(db->put_meta("k", "v"));  // makes sure -wal and -shm exist
  EXPECT_EQ(mode_of(dir.file("coffer.db")), 0600u);
  EXPECT_EQ(mode_of(dir.file("coffer.db-wal")), 0600u);
  EXPECT_EQ(mode_of(dir.file("coffer.db-shm")), 0600u);
}

TEST(SqliteStorageOpen, MissingFileWithoutCreateIsAnErrorNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("absent.db");
  auto db = SqliteStorage::open(path, false);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::failed_precondition);
  EXPECT_EQ(db.status().message(),
            "cannot open database " + path + ": unable to open database file");
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SqliteStorageOpen, MissingDirectoryIsAnError) {
  TempDir dir;
  auto db = SqliteStorage::open(dir.file("no/such/dir/coffer.db"), true);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr("cannot open database " + dir.file("no/such/dir/coffer.db")));
}

TEST(SqliteStorageOpen, CorruptFileIsAnErrorAndIsNotRecreated) {
  TempDir dir;
  const std::string path = dir.file("coffer.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>('A' + i % 26));
  }
  const auto before = file_bytes(path);
  auto db = SqliteStorage::open(path, true);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::data_loss);
  EXPECT_THAT(db.status().message(), HasSubstr(path));
  EXPECT_THAT(db.status().message(), HasSubstr("file is not a database"));
  EXPECT_EQ(file_bytes(path), before);
}

TEST(SqliteStorageOpen, UnreadableFileIsAnError) {
  TempDir dir;
  const std::string path = dir.file("coffer.db");
  { must_open(path); }
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  if (::geteuid() != 0) {
    auto db = SqliteStorage::open(path, true);
    ASSERT_FALSE(db.ok());
    EXPECT_THAT(db.status().message(), HasSubstr("cannot open database " + path));
    return;
  }
  // Root reads mode-000 files, so the open runs in a child that has become "nobody".
  ASSERT_EQ(::chmod(dir.file("").c_str(), 0755), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    auto db = SqliteStorage::open(path, true);
    if (db.ok()) ::_exit(1);
    ::_exit(db.status().message().find("cannot open database " + path) != std::string::npos ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: opened an unreadable file, 2: wrong message, 3: setuid failed";
}

TEST(SqliteStorageOpen, ADirectoryAtThePathIsAnError) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("coffer.db"));
  auto db = SqliteStorage::open(dir.file("coffer.db"), true);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr("cannot open database " + dir.file("coffer.db")));
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("coffer.db")));
}

TEST(SqliteStorageOpen, SymlinkIsRefused) {
  TempDir dir;
  { must_open(dir.file("real.db")); }
  std::filesystem::create_symlink(dir.file("real.db"), dir.file("link.db"));
  auto db = SqliteStorage::open(dir.file("link.db"), false);
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(db.status().message(), HasSubstr("symbolic link"));
}

TEST(SqliteStorageOpen, NewerSchemaVersionIsRefusedUntouched) {
  TempDir dir;
  const std::string path = dir.file("coffer.db");
  { must_open(path); }
  const int newer = latest_schema_version() + 1;
  { RawDb(path).exec("PRAGMA user_version = " + std::to_string(newer)); }
  auto db = SqliteStorage::open(path, false);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::failed_precondition);
  EXPECT_THAT(db.status().message(), HasSubstr("cannot open database " + path));
  EXPECT_THAT(db.status().message(), HasSubstr("newer"));
  EXPECT_EQ(RawDb(path).text("PRAGMA user_version"), std::to_string(newer));
}

TEST(SqliteStorageOpen, ReopenKeepsDataAndMigrationsRunOnce) {
  TempDir dir;
  const std::string path = dir.file("coffer.db");
  {
    auto db = must_open(path);
    ASSERT_OK(db->put_meta("initialised", "yes"));
  }
  const std::string schema = RawDb(path).text(
      "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master ORDER BY name)");
  for (int i = 0; i < 2; ++i) {
    auto db = SqliteStorage::open(path, i == 0);
    ASSERT_OK(db);
    auto v = (*db)->get_meta("initialised");
    ASSERT_OK(v);
    EXPECT_EQ(v->value_or(""), "yes");
    EXPECT_EQ((*db)->settings()->user_version, latest_schema_version());
  }
  EXPECT_EQ(RawDb(path).text("SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master "
                             "ORDER BY name)"),
            schema);
}

TEST(SqliteStorageOpen, AnEmptyFileIsMigratedFromVersionZero) {
  TempDir dir;
  const std::string path = dir.file("coffer.db");
  { std::ofstream touch(path); }
  auto db = SqliteStorage::open(path, false);
  ASSERT_OK(db);
  EXPECT_EQ((*db)->settings()->user_version, latest_schema_version());
}

TEST(SqliteStorageOpen, MigrationsAreContiguousFromOne) {
  int expected = 1;
  for (const Migration& m : schema_migrations()) EXPECT_EQ(m.version, expected++);
}

class SqliteStorageTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = must_open(dir_.file("coffer.db")); ASSERT_NE(db_, nullptr); }
  TempDir dir_;
  std::unique_ptr<SqliteStorage> db_;
};

TEST_F(SqliteStorageTest, MetaCrud) {
  EXPECT_FALSE(db_->get_meta("generation")->has_value());
  ASSERT_OK(db_->put_meta("generation", "1"));
  ASSERT_OK(db_->put_meta("generation", "2"));
  EXPECT_EQ(db_->get_meta("generation")->value_or(""), "2");
}

KeyringRow keyring_row(const std::string& purpose, std::uint32_t version) {
  return KeyringRow{purpose, version, "MECH", "mk-1", {1, 2, 3, static_cast<std::uint8_t>(version)}, 1700000000, 0};
}

TEST_F(SqliteStorageTest, KeyringRowsInsertLoadCount) {
  ASSERT_OK(db_->insert_keyring_row(keyring_row("dek", 2)));
  ASSERT_OK(db_->insert_keyring_rows({keyring_row("dek", 1), keyring_row("derive", 1)}));
  EXPECT_CODE(db_->insert_keyring_row(keyring_row("dek", 1)), Code::already_exists);
  ASSERT_OK(db_->add_encryptions("dek", 2, 5));
  ASSERT_OK(db_->add_encryptions("dek", 2, 7));
  EXPECT_CODE(db_->add_encryptions("dek", 9, 1), Code::not_found);

  auto rows = db_->load_keyring();
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].purpose, "dek");
  EXPECT_EQ((*rows)[0].version, 1u);
  EXPECT_EQ((*rows)[1].version, 2u);
  EXPECT_EQ((*rows)[1].encryptions, 12u);
  EXPECT_EQ((*rows)[1].wrapped, (std::vector<std::uint8_t>{1, 2, 3, 2}));
  EXPECT_EQ((*rows)[1].mechanism, "MECH");
  EXPECT_EQ((*rows)[1].master_key_id, "mk-1");
  EXPECT_EQ((*rows)[1].created_at, 1700000000);
  EXPECT_EQ((*rows)[2].purpose, "derive");
}

TEST_F(SqliteStorageTest, KeyringMultiInsertIsAllOrNothing) {
  ASSERT_OK(db_->insert_keyring_row(keyring_row("derive", 1)));
  EXPECT_CODE(db_->insert_keyring_rows({keyring_row("dek", 1), keyring_row("derive", 1)}),
              Code::already_exists);
  auto rows = db_->load_keyring();
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);  // dek v1 was rolled back with the failed transaction
  EXPECT_EQ((*rows)[0].purpose, "derive");
}

TEST_F(SqliteStorageTest, SecretCrudKeepsMountsApart) {
  SecretRecord r{"secret/", "app/db", 1, {9, 8, 7}, 100};
  ASSERT_OK(db_->put_secret(r));
  r.sealed = {6, 5};
  r.dek_version = 2;
  r.updated_at = 200;
  ASSERT_OK(db_->put_secret(r));
  ASSERT_OK(db_->put_secret(SecretRecord{"other/", "app/db", 1, {1}, 300}));

  auto got = db_->get_secret("secret/", "app/db");
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->sealed, (std::vector<std::uint8_t>{6, 5}));
  EXPECT_EQ((*got)->dek_version, 2u);
  EXPECT_EQ((*got)->updated_at, 200);
  EXPECT_FALSE(db_->get_secret("secret/", "app/d")->has_value());

  EXPECT_TRUE(*db_->delete_secret("secret/", "app/db"));
  EXPECT_FALSE(*db_->delete_secret("secret/", "app/db"));
  EXPECT_FALSE(db_->get_secret("secret/", "app/db")->has_value());
  EXPECT_TRUE(db_->get_secret("other/", "app/db")->has_value());
}

TEST_F(SqliteStorageTest, ListSecretsReturnsImmediateChildrenLikeVault) {
  for (const char* p : {"app/db", "app/api/key", "app/api/cert", "app", "apple", "apple/x", "top",
                        "a%b", "a_c", "ab", "x/y/z", "a_/x", "ab/y", "a%/p", "abc/q"}) {
    ASSERT_OK(db_->put_secret(SecretRecord{"secret/", p, 1, {0}, 1}));
  }
  ASSERT_OK(db_->put_secret(SecretRecord{"other/", "app/zzz", 1, {0}, 1}));

  EXPECT_THAT(*db_->list_secrets("secret/", ""),
              ElementsAre("a%/", "a%b", "a_/", "a_c", "ab", "ab/", "abc/", "app", "app/", "apple",
                          "apple/", "top", "x/"));
  EXPECT_THAT(*db_->list_secrets("secret/", "app/"), ElementsAre("api/", "db"));
  EXPECT_THAT(*db_->list_secrets("secret/", "app"), ElementsAre("api/", "db"));
  EXPECT_THAT(*db_->list_secrets("secret/", "app/api/"), ElementsAre("cert", "key"));
  EXPECT_THAT(*db_->list_secrets("secret/", "apple/"), ElementsAre("x"));
  EXPECT_THAT(*db_->list_secrets("secret/", "x/"), ElementsAre("y/"));
  // Wildcards of LIKE are plain characters here.
  EXPECT_THAT(*db_->list_secrets("secret/", "a_/"), ElementsAre("x"));
  EXPECT_THAT(*db_->list_secrets("secret/", "a%/"), ElementsAre("p"));
  EXPECT_THAT(*db_->list_secrets("secret/", "nope/"), IsEmpty());
  EXPECT_THAT(*db_->list_secrets("other/", ""), ElementsAre("app/"));
  EXPECT_THAT(*db_->list_secrets("none/", ""), IsEmpty());
}

TEST_F(SqliteStorageTest, ListSecretsHandlesManyChildrenAndDeepFolders) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(db_->put_secret(SecretRecord{"s/", "f/leaf" + std::to_string(100 + i), 1, {0}, 1}));
    ASSERT_OK(db_->put_secret(SecretRecord{"s/", "f/dir" + std::to_string(100 + i) + "/a/b", 1, {0}, 1}));
    ASSERT_OK(db_->put_secret(SecretRecord{"s/", "f/dir" + std::to_string(100 + i) + "/c", 1, {0}, 1}));
  }
  auto list = db_->list_secrets("s/", "f/");
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 100u);
  EXPECT_EQ(list->front(), "dir100/");
  EXPECT_EQ(list->back(), "leaf149");
  EXPECT_TRUE(std::is_sorted(list->begin(), list->end()));
}

TokenRow token(std::uint8_t id, std::optional<std::uint8_t> parent, std::int64_t expires_at) {
  TokenRow t;
  t.token_hash = hash(id);
  t.accessor_hash = std::vector<std::uint8_t>(32, static_cast<std::uint8_t>(id + 100));
  t.accessor = "acc-" + std::to_string(id);
  if (parent) t.parent_hash = std::vector<std::uint8_t>(32, *parent);
  t.policies_json = R"(["default"])";
  t.meta_json = R"({"cert_name":"web"})";
  t.display_name = "cert-web";
  t.path = "auth/cert/login";
  t.bound_cert_fingerprint = "ab12";
  t.issued_at = 10;
  t.expires_at = expires_at;
  t.max_expires_at = expires_at * 2;
  t.ttl_seconds = 900;
  t.renewable = id % 2 == 0;
  t.orphan = !parent.has_value();
  return t;
}

TEST_F(SqliteStorageTest, TokenCrud) {
  ASSERT_OK(db_->insert_token(token(1, std::nullopt, 1000)));
  ASSERT_OK(db_->insert_token(token(2, 1, 1000)));
  auto got = db_->get_token(hash(2));
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  const TokenRow& t = **got;
  EXPECT_EQ(t.accessor, "acc-2");
  ASSERT_TRUE(t.parent_hash.has_value());
  EXPECT_EQ(*t.parent_hash, hash(1));
  EXPECT_EQ(t.policies_json, R"(["default"])");
  EXPECT_EQ(t.meta_json, R"({"cert_name":"web"})");
  EXPECT_EQ(t.display_name, "cert-web");
  EXPECT_EQ(t.path, "auth/cert/login");
  EXPECT_EQ(t.bound_cert_fingerprint, "ab12");
  EXPECT_EQ(t.issued_at, 10);
  EXPECT_EQ(t.expires_at, 1000);
  EXPECT_EQ(t.max_expires_at, 2000);
  EXPECT_EQ(t.ttl_seconds, 900);
  EXPECT_TRUE(t.renewable);
  EXPECT_FALSE(t.orphan);
  auto root = db_->get_token(hash(1));
  ASSERT_TRUE(root->has_value());
  EXPECT_FALSE((*root)->parent_hash.has_value());
  EXPECT_FALSE((*root)->renewable);

  auto by_acc = db_->get_token_by_accessor(hash(102));
  ASSERT_OK(by_acc);
  ASSERT_TRUE(by_acc->has_value());
  EXPECT_EQ((*by_acc)->token_hash, hash(2));
  EXPECT_FALSE(db_->get_token(hash(9))->has_value());

  EXPECT_CODE(db_->insert_token(token(1, std::nullopt, 5)), Code::already_exists);
  TokenRow same_accessor = token(3, std::nullopt, 5);
  same_accessor.accessor_hash = hash(101);
  EXPECT_CODE(db_->insert_token(same_accessor), Code::already_exists);
  EXPECT_CODE(db_->insert_token(token(4, 77, 5)), Code::not_found);  // no such parent

  ASSERT_OK(db_->update_token_expiry(hash(2), 4242));
  EXPECT_EQ((*db_->get_token(hash(2)))->expires_at, 4242);
  EXPECT_CODE(db_->update_token_expiry(hash(9), 1), Code::not_found);
}

TEST_F(SqliteStorageTest, DeletingATokenDeletesItsWholeTree) {
  // 1 -> 2 -> 3, 1 -> 4; 5 is unrelated; 6 is a child of 5.
  ASSERT_OK(db_->insert_token(token(1, std::nullopt, 0)));
  ASSERT_OK(db_->insert_token(token(2, 1, 0)));
  ASSERT_OK(db_->insert_token(token(3, 2, 0)));
  ASSERT_OK(db_->insert_token(token(4, 1, 0)));
  ASSERT_OK(db_->insert_token(token(5, std::nullopt, 0)));
  ASSERT_OK(db_->insert_token(token(6, 5, 0)));

  auto n = db_->delete_token_tree(hash(2));
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);  // 2 and 3
  n = db_->delete_token_tree(hash(1));
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);  // 1 and 4
  for (int id : {1, 2, 3, 4}) {
    EXPECT_FALSE(db_->get_token(hash(id))->has_value()) << id;
  }
  EXPECT_TRUE(db_->get_token(hash(5))->has_value());
  EXPECT_TRUE(db_->get_token(hash(6))->has_value());
  EXPECT_EQ(*db_->delete_token_tree(hash(1)), 0u);
}

TEST_F(SqliteStorageTest, ForeignKeyCascadeAloneRemovesChildren) {
  // A row deleted behind the storage's back (e.g. by a future code path) still takes its
  // children: the schema's ON DELETE CASCADE, with foreign_keys on, guarantees it.
  ASSERT_OK(db_->insert_token(token(1, std::nullopt, 0)));
  ASSERT_OK(db_->insert_token(token(2, 1, 0)));
  ASSERT_OK(db_->insert_token(token(3, 2, 0)));
  RawDb raw(dir_.file("coffer.db"));
  raw.exec("PRAGMA foreign_keys = ON");
  raw.exec("DELETE FROM tokens WHERE accessor = 'acc-1'");
  EXPECT_EQ(raw.text("SELECT count(*) FROM tokens"), "0");
}

TEST_F(SqliteStorageTest, ExpiredSweepRemovesExpiredTokensAndTheirChildren) {
  ASSERT_OK(db_->insert_token(token(1, std::nullopt, 0)));    // never expires
  ASSERT_OK(db_->insert_token(token(2, std::nullopt, 100)));
  ASSERT_OK(db_->insert_token(token(3, std::nullopt, 200)));
  ASSERT_OK(db_->insert_token(token(4, std::nullopt, 300)));
  ASSERT_OK(db_->insert_token(token(5, 2, 1000)));           // child of an expired parent
  ASSERT_OK(db_->insert_token(token(6, 3, 150)));            // expired child of an expired parent
  auto n = db_->delete_expired_tokens(200);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 4u);  // 2, 3, 5, 6 (6 counted once)
  for (int id : {2, 3, 5, 6}) {
    EXPECT_FALSE(db_->get_token(hash(id))->has_value()) << id;
  }
  EXPECT_TRUE(db_->get_token(hash(1))->has_value());
  EXPECT_TRUE(db_->get_token(hash(4))->has_value());
  EXPECT_EQ(*db_->delete_expired_tokens(200), 0u);
}

TEST_F(SqliteStorageTest, PoliciesAndCertRolesCrud) {
  ASSERT_OK(db_->put_policy({"web", R"({"path":{}})"}));
  ASSERT_OK(db_->put_policy({"admin", "{}"}));
  ASSERT_OK(db_->put_policy({"web", R"({"path":{"a":1}})"}));
  EXPECT_EQ((*db_->get_policy("web"))->json, R"({"path":{"a":1}})");
  EXPECT_THAT(*db_->list_policies(), ElementsAre("admin", "web"));
  EXPECT_TRUE(*db_->delete_policy("web"));
  EXPECT_FALSE(*db_->delete_policy("web"));
  EXPECT_FALSE(db_->get_policy("web")->has_value());

  ASSERT_OK(db_->put_cert_role({"web", R"({"allowed_common_names":["w"]})"}));
  EXPECT_EQ((*db_->get_cert_role("web"))->name, "web");
  EXPECT_THAT(*db_->list_cert_roles(), ElementsAre("web"));
  EXPECT_THAT(*db_->list_policies(), ElementsAre("admin"));  // separate tables
  EXPECT_TRUE(*db_->delete_cert_role("web"));
  EXPECT_THAT(*db_->list_cert_roles(), IsEmpty());
}

TEST_F(SqliteStorageTest, SecureDeleteLeavesNoTraceOfDeletedRows) {
  const std::string marker = "deleted-ciphertext-marker-5be1";
  ASSERT_OK(db_->put_secret(SecretRecord{"secret/", "a", 1, bytes(marker), 1}));
  ASSERT_OK(db_->put_secret(SecretRecord{"secret/", "b", 1, bytes("keep"), 1}));
  ASSERT_OK(db_->checkpoint());
  ASSERT_TRUE(coffer::testing::contains(file_bytes(dir_.file("coffer.db")), marker));  // found
  EXPECT_TRUE(*db_->delete_secret("secret/", "a"));
  ASSERT_OK(db_->checkpoint());
  EXPECT_FALSE(coffer::testing::contains(file_bytes(dir_.file("coffer.db")), marker));
  EXPECT_FALSE(coffer::testing::contains(file_bytes(dir_.file("coffer.db-wal")), marker));

  // Control (Debian's sqlite defaults secure_delete on, so this is what shows the check above
  // can see a trace at all): the same steps on a connection with it off leave the bytes.
  const std::string control = "control-marker-without-secure-delete";
  RawDb raw(dir_.file("coffer.db"));
  raw.exec("PRAGMA secure_delete = OFF");
  raw.exec("INSERT INTO secrets VALUES ('secret/', 'c', 1, CAST('" + control + "' AS BLOB), 1)");
  raw.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  raw.exec("DELETE FROM secrets WHERE path = 'c'");
  raw.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  EXPECT_TRUE(coffer::testing::contains(file_bytes(dir_.file("coffer.db")), control));
}

TEST_F(SqliteStorageTest, ConcurrentCallersAreSerialisedSafely) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string path = "t" + std::to_string(t) + "/" + std::to_string(i);
        EXPECT_OK(db_->put_secret(SecretRecord{"secret/", path, 1, bytes(path), i}));
        auto got = db_->get_secret("secret/", path);
        EXPECT_TRUE(got.ok() && got->has_value() && (*got)->sealed == bytes(path));
        EXPECT_OK(db_->list_secrets("secret/", ""));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(db_->list_secrets("secret/", "t" + std::to_string(t) + "/")->size(), 100u);
  }
}

// The sweep works in chunks of 1000 expired roots; more than that must still all go, children
// included, and live tokens stay.
TEST_F(SqliteStorageTest, ExpiredSweepCrossesItsChunkSize) {
  auto row_for = [](std::uint32_t i, std::int64_t expires_at) {
    TokenRow t = token(1, std::nullopt, expires_at);
    t.token_hash.assign(32, 0);
    t.accessor_hash.assign(32, 1);
    for (int b = 0; b < 4; ++b) {
      t.token_hash[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(i >> (8 * b));
      t.accessor_hash[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(i >> (8 * b));
    }
    return t;
  };
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = t; i < 2600; i += 8) EXPECT_OK(db_->insert_token(row_for(i, i < 2500 ? 50 : 5000)));
    });
  }
  for (auto& th : threads) th.join();
  TokenRow child = row_for(9999, 5000);
  child.parent_hash = row_for(7, 50).token_hash;
  ASSERT_OK(db_->insert_token(child));
  auto swept = db_->delete_expired_tokens(100);
  ASSERT_OK(swept);
  EXPECT_EQ(*swept, 2501u);
  EXPECT_FALSE(db_->get_token(child.token_hash)->has_value());
  EXPECT_TRUE(db_->get_token(row_for(2599, 0).token_hash)->has_value());
  EXPECT_EQ(*db_->delete_expired_tokens(100), 0u);
}

// Group commit: many concurrent writers, some of which fail (a duplicate token), share
// transactions; every successful write lands, every failure is reported to its own caller only.
TEST_F(SqliteStorageTest, GroupedWritesLandAndOneFailureSpoilsNoOtherWrite) {
  ASSERT_OK(db_->insert_token(token(200, std::nullopt, 1000)));
  std::atomic<int> duplicate_refusals{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([this, t, &duplicate_refusals] {
      for (int i = 0; i < 40; ++i) {
        const std::string path = "g" + std::to_string(t) + "/" + std::to_string(i);
        EXPECT_OK(db_->put_secret(SecretRecord{"secret/", path, 1, bytes(path), i}));
        if (i % 10 == 0) {
          const Status dup = db_->insert_token(token(200, std::nullopt, 1000));
          if (dup.code() == Code::already_exists) ++duplicate_refusals;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(duplicate_refusals.load(), 16 * 4);
  for (int t = 0; t < 16; ++t) {
    const std::string folder = "g" + std::to_string(t) + "/";
    EXPECT_EQ(db_->list_secrets("secret/", folder)->size(), 40u) << folder;
    auto got = db_->get_secret("secret/", folder + "39");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->sealed, bytes(folder + "39"));
  }
  // Deletes go through the group too and report per caller whether a row went.
  EXPECT_TRUE(*db_->delete_secret("secret/", "g0/0"));
  EXPECT_FALSE(*db_->delete_secret("secret/", "g0/0"));
}

// Reads run on their own connections: a write stuck behind another process's write lock does
// not hold up a read (with one shared connection the read would wait for the write).
TEST_F(SqliteStorageTest, AReadDoesNotWaitForAStuckWrite) {
  ASSERT_OK(db_->put_secret(SecretRecord{"secret/", "r", 1, bytes("r"), 1}));
  RawDb other(dir_.file("coffer.db"));
  other.exec("BEGIN IMMEDIATE");
  std::atomic<bool> write_done{false};
  std::thread writer([&] {
    EXPECT_OK(db_->put_secret(SecretRecord{"secret/", "w", 1, bytes("w"), 1}));
    write_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  auto got = db_->get_secret("secret/", "r");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(write_done.load()) << "the write should still be waiting for the lock";
  other.exec("COMMIT");
  writer.join();
  ASSERT_OK(got);
  EXPECT_TRUE(got->has_value());
  EXPECT_LT(waited, std::chrono::seconds(2));
  EXPECT_TRUE(write_done.load());
  EXPECT_TRUE(db_->get_secret("secret/", "w")->has_value()) << "a committed write is visible to readers";
}

}  // namespace
}  // namespace coffer::storage
