// The one-time credentials in SqliteStorage: AppRole secret IDs (single use, replay revokes),
// response-wrapped responses (taken once) and request nonces (recorded once), on a real sqlite
// file, including concurrent use from several threads and from two connections to one file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "storage/sqlite_storage.h"
#include "storage_test_util.h"

namespace coffer::storage {
namespace {

using ::coffer::testing::TempDir;
using ::testing::ElementsAre;

std::vector<std::uint8_t> id_hash(int id, int salt = 0) {
  return std::vector<std::uint8_t>(32, static_cast<std::uint8_t>(id + salt));
}

TokenRow make_token(int id, std::optional<int> parent = std::nullopt, std::int64_t expires_at = 1000) {
  TokenRow t;
  t.token_hash = id_hash(id);
  t.accessor_hash = id_hash(id, 100);
  t.accessor = "acc-" + std::to_string(id);
  if (parent) t.parent_hash = id_hash(*parent);
  t.policies_json = R"(["default"])";
  t.meta_json = R"({"role_name":"app"})";
  t.display_name = "approle";
  t.path = "auth/approle/login";
  t.issued_at = 10;
  t.expires_at = expires_at;
  t.max_expires_at = expires_at;
  t.ttl_seconds = 600;
  return t;
}

SecretIdRow make_secret_id(int id, const std::string& role, std::int64_t num_uses, std::int64_t expires_at = 0) {
  SecretIdRow r;
  r.secret_id_hash = id_hash(id, 50);
  r.accessor_hash = id_hash(id, 150);
  r.accessor = "sid-acc-" + std::to_string(id);
  r.role_name = role;
  r.metadata_json = "{}";
  r.cidrs_json = "[]";
  r.num_uses = num_uses;
  r.uses_left = num_uses;
  r.created_at = 10;
  r.expires_at = expires_at;
  return r;
}

std::unique_ptr<SqliteStorage> open_db(const std::string& path) {
  auto s = SqliteStorage::open(path, true);
  EXPECT_OK(s);
  return s.ok() ? std::move(s).value() : nullptr;
}

class OneTimeStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = open_db(dir_.file("coffer.db"));
    ASSERT_NE(db_, nullptr);
    ASSERT_OK(db_->put_approle_role(ApproleRoleRow{"app", "role-id-app", R"({"bind_secret_id":true})"}));
  }
  TempDir dir_;
  std::unique_ptr<SqliteStorage> db_;
};

TEST_F(OneTimeStorageTest, ApproleRolesAreFoundByNameAndRoleIdWhichIsUnique) {
  ASSERT_OK(db_->put_approle_role(ApproleRoleRow{"db", "role-id-db", "{}"}));
  auto by_id = db_->get_approle_role_by_role_id("role-id-db");
  ASSERT_OK(by_id);
  ASSERT_TRUE(by_id->has_value());
  EXPECT_EQ((*by_id)->name, "db");
  EXPECT_CODE(db_->put_approle_role(ApproleRoleRow{"other", "role-id-db", "{}"}), Code::already_exists);
  // Replacing a role by name (a new role_id) keeps one row.
  ASSERT_OK(db_->put_approle_role(ApproleRoleRow{"db", "role-id-db-2", R"({"x":1})"}));
  EXPECT_FALSE(db_->get_approle_role_by_role_id("role-id-db")->has_value());
  EXPECT_EQ((*db_->get_approle_role("db"))->json, R"({"x":1})");
  EXPECT_THAT(*db_->list_approle_roles(), ElementsAre("app", "db"));
  EXPECT_TRUE(*db_->delete_approle_role("db"));
  EXPECT_FALSE(*db_->delete_approle_role("db"));
}

TEST_F(OneTimeStorageTest, SecretIdNeedsAnExistingRoleAndDiesWithIt) {
  EXPECT_CODE(db_->insert_secret_id(make_secret_id(1, "nope", 1)), Code::not_found);
  ASSERT_OK(db_->insert_secret_id(make_secret_id(1, "app", 1)));
  EXPECT_CODE(db_->insert_secret_id(make_secret_id(1, "app", 1)), Code::already_exists);
  EXPECT_THAT(*db_->list_secret_id_accessors("app"), ElementsAre("sid-acc-1"));
  auto by_accessor = db_->get_secret_id_by_accessor(id_hash(1, 150));
  ASSERT_OK(by_accessor);
  ASSERT_TRUE(by_accessor->has_value());
  EXPECT_EQ((*by_accessor)->num_uses, 1);
  ASSERT_TRUE(*db_->delete_approle_role("app"));
  EXPECT_FALSE(db_->get_secret_id(id_hash(1, 50))->has_value());
}

TEST_F(OneTimeStorageTest, SingleUseSecretIdIssuesOnceAndAReplayRevokesWhatItIssued) {
  ASSERT_OK(db_->insert_secret_id(make_secret_id(1, "app", 1)));
  auto first = db_->use_secret_id(id_hash(1, 50), "app", 100, 5000, make_token(1));
  ASSERT_OK(first);
  EXPECT_EQ(first->outcome, SecretIdUseOutcome::kIssued);
  EXPECT_EQ(first->row.uses_left, 1);  // the row as it was before this use
  ASSERT_TRUE(db_->get_token(id_hash(1))->has_value());
  ASSERT_OK(db_->insert_token(make_token(2, 1)));  // a child the first token created

  auto tomb = db_->get_secret_id(id_hash(1, 50));
  ASSERT_TRUE(tomb->has_value());
  EXPECT_EQ((*tomb)->uses_left, 0);
  EXPECT_EQ((*tomb)->expires_at, 5000);  // kept as a tombstone until tombstone_until
  EXPECT_EQ((*tomb)->last_used_at, 100);
  EXPECT_TRUE(db_->list_secret_id_accessors("app")->empty());

  auto replay = db_->use_secret_id(id_hash(1, 50), "app", 200, 5000, make_token(3));
  ASSERT_OK(replay);
  EXPECT_EQ(replay->outcome, SecretIdUseOutcome::kReplayed);
  EXPECT_EQ(replay->revoked_tokens, 2u);
  EXPECT_FALSE(db_->get_token(id_hash(1))->has_value());
  EXPECT_FALSE(db_->get_token(id_hash(2))->has_value());
  EXPECT_FALSE(db_->get_token(id_hash(3))->has_value()) << "a replay must not issue a token";
}

TEST_F(OneTimeStorageTest, LimitedUsesCountDownAndUnlimitedNeverRunOut) {
  ASSERT_OK(db_->insert_secret_id(make_secret_id(1, "app", 2)));
  ASSERT_OK(db_->insert_secret_id(make_secret_id(2, "app", 0)));
  EXPECT_EQ(db_->use_secret_id(id_hash(1, 50), "app", 100, 0, make_token(1))->outcome, SecretIdUseOutcome::kIssued);
  EXPECT_EQ(db_->use_secret_id(id_hash(1, 50), "app", 100, 0, make_token(2))->outcome, SecretIdUseOutcome::kIssued);
  auto third = db_->use_secret_id(id_hash(1, 50), "app", 100, 0, make_token(3));
  EXPECT_EQ(third->outcome, SecretIdUseOutcome::kReplayed);
  EXPECT_EQ(third->revoked_tokens, 2u);
  for (int i = 10; i < 15; ++i) {
    EXPECT_EQ(db_->use_secret_id(id_hash(2, 50), "app", 100, 0, make_token(i))->outcome, SecretIdUseOutcome::kIssued);
  }
  EXPECT_EQ((*db_->get_secret_id(id_hash(2, 50)))->expires_at, 0) << "unlimited IDs keep their expiry";
}

TEST_F(OneTimeStorageTest, WrongRoleUnknownAndExpiredChangeNothing) {
  ASSERT_OK(db_->put_approle_role(ApproleRoleRow{"other", "role-id-other", "{}"}));
  ASSERT_OK(db_->insert_secret_id(make_secret_id(1, "app", 1, 150)));
  EXPECT_EQ(db_->use_secret_id(id_hash(1, 50), "other", 100, 0, make_token(1))->outcome, SecretIdUseOutcome::kUnknown);
  EXPECT_EQ(db_->use_secret_id(id_hash(9, 50), "app", 100, 0, make_token(1))->outcome, SecretIdUseOutcome::kUnknown);
  EXPECT_EQ(db_->use_secret_id(id_hash(1, 50), "app", 150, 0, make_token(1))->outcome, SecretIdUseOutcome::kExpired);
  EXPECT_FALSE(db_->get_token(id_hash(1))->has_value());
  EXPECT_EQ((*db_->get_secret_id(id_hash(1, 50)))->uses_left, 1);
  EXPECT_EQ(*db_->delete_expired_secret_ids(149), 0u);
  EXPECT_EQ(*db_->delete_expired_secret_ids(150), 1u);
  EXPECT_EQ(db_->use_secret_id(id_hash(1, 50), "app", 151, 0, make_token(1))->outcome, SecretIdUseOutcome::kUnknown);
}

// Many threads, and a second connection to the same file, race for one single-use secret ID.
TEST_F(OneTimeStorageTest, ConcurrentUsesOfASingleUseSecretIdHaveExactlyOneWinner) {
  auto other = open_db(dir_.file("coffer.db"));
  ASSERT_NE(other, nullptr);
  for (int round = 0; round < 5; ++round) {
    const int sid = 1 + round;
    ASSERT_OK(db_->insert_secret_id(make_secret_id(sid, "app", 1)));
    std::atomic<int> issued{0}, replayed{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        SqliteStorage& db = (t % 2 == 0) ? *db_ : *other;
        auto use = db.use_secret_id(id_hash(sid, 50), "app", 100, 5000, make_token(10 + round * 10 + t));
        if (!use.ok()) {
          ++failed;
        } else if (use->outcome == SecretIdUseOutcome::kIssued) {
          ++issued;
        } else if (use->outcome == SecretIdUseOutcome::kReplayed) {
          ++replayed;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(issued.load(), 1) << "round " << round;
    EXPECT_EQ(replayed.load() + failed.load(), 7) << "round " << round;
    EXPECT_EQ(failed.load(), 0) << "the busy timeout should serialise the two connections";
  }
}

TEST_F(OneTimeStorageTest, WrappedResponseIsTakenExactlyOnce) {
  WrappedResponseRow w{id_hash(1), "secret/app", 100, 300, 1, {1, 2, 3}};
  ASSERT_OK(db_->insert_wrapped_response(make_token(1), w));
  auto looked = db_->get_wrapped_response(id_hash(1));
  ASSERT_TRUE(looked->has_value());
  EXPECT_EQ((*looked)->creation_path, "secret/app");
  auto taken = db_->take_wrapped_response(id_hash(1));
  ASSERT_OK(taken);
  ASSERT_TRUE(taken->has_value());
  EXPECT_EQ((*taken)->sealed, (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_FALSE(db_->get_token(id_hash(1))->has_value()) << "the wrapping token goes with it";
  EXPECT_FALSE(db_->take_wrapped_response(id_hash(1))->has_value());
  // A response must belong to its token.
  EXPECT_CODE(db_->insert_wrapped_response(make_token(2), w), Code::invalid_argument);
  EXPECT_FALSE(db_->get_token(id_hash(2))->has_value());
}

TEST_F(OneTimeStorageTest, ConcurrentUnwrapsHaveExactlyOneWinner) {
  ASSERT_OK(db_->insert_wrapped_response(make_token(1), WrappedResponseRow{id_hash(1), "p", 1, 1, 1, {9}}));
  std::atomic<int> got{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto r = db_->take_wrapped_response(id_hash(1));
      if (r.ok() && r->has_value()) ++got;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(got.load(), 1);
}

TEST_F(OneTimeStorageTest, ExpiredWrappingTokenTakesItsResponseAlongAndRewrapReplaces) {
  ASSERT_OK(db_->insert_wrapped_response(make_token(1, std::nullopt, 50), WrappedResponseRow{id_hash(1), "p", 1, 40, 1, {9}}));
  ASSERT_OK(db_->insert_wrapped_response(make_token(2, std::nullopt, 500), WrappedResponseRow{id_hash(2), "q", 1, 40, 1, {8}}));
  EXPECT_EQ(*db_->delete_expired_tokens(60), 1u);
  EXPECT_FALSE(db_->get_wrapped_response(id_hash(1))->has_value());

  EXPECT_TRUE(*db_->replace_wrapped_response(id_hash(2), make_token(3), WrappedResponseRow{id_hash(3), "q", 2, 40, 1, {7}}));
  EXPECT_FALSE(db_->get_wrapped_response(id_hash(2))->has_value());
  EXPECT_FALSE(db_->get_token(id_hash(2))->has_value());
  EXPECT_EQ((*db_->get_wrapped_response(id_hash(3)))->sealed, std::vector<std::uint8_t>{7});
  // The old token is gone: a second rewrap of it changes nothing.
  EXPECT_FALSE(*db_->replace_wrapped_response(id_hash(2), make_token(4), WrappedResponseRow{id_hash(4), "q", 2, 40, 1, {6}}));
  EXPECT_FALSE(db_->get_token(id_hash(4))->has_value());
}

// auth::TokenStore caches token rows while token_generation() stands still: every way a stored
// token can change or disappear must move it (after its commit), and the hot writes must not.
TEST_F(OneTimeStorageTest, TokenGenerationMovesWithEveryChangeToAStoredToken) {
  auto gen = [&] { return db_->token_generation().value_or(~0ull); };
  ASSERT_TRUE(db_->token_generation().has_value());
  std::uint64_t g = gen();
  auto moved = [&](const char* what) {
    const std::uint64_t now = gen();
    EXPECT_GT(now, g) << what << " did not move the token generation";
    g = now;
  };
  auto still = [&](const char* what) { EXPECT_EQ(gen(), g) << what << " moved the token generation"; };

  ASSERT_OK(db_->insert_token(make_token(1)));
  ASSERT_OK(db_->insert_token(make_token(2, 1)));
  ASSERT_OK(db_->put_secret(SecretRecord{"secret/", "a", 1, {1, 2}, 0}));
  ASSERT_TRUE(db_->get_token(id_hash(1))->has_value());
  still("inserting tokens, writing a secret, reading a token");

  ASSERT_OK(db_->update_token_expiry(id_hash(1), 900));
  moved("update_token_expiry (renewal)");
  ASSERT_EQ(*db_->delete_token_tree(id_hash(1)), 2u);
  moved("delete_token_tree (revocation)");

  ASSERT_OK(db_->insert_token(make_token(3, std::nullopt, 50)));
  ASSERT_EQ(*db_->delete_expired_tokens(60), 1u);
  moved("delete_expired_tokens (sweep)");

  ASSERT_OK(db_->insert_wrapped_response(make_token(4), WrappedResponseRow{id_hash(4), "p", 1, 40, 1, {9}}));
  still("insert_wrapped_response");
  ASSERT_TRUE(db_->take_wrapped_response(id_hash(4))->has_value());
  moved("take_wrapped_response (unwrap deletes the wrapping token)");
  ASSERT_OK(db_->insert_wrapped_response(make_token(5), WrappedResponseRow{id_hash(5), "p", 1, 40, 1, {9}}));
  ASSERT_TRUE(*db_->replace_wrapped_response(id_hash(5), make_token(6), WrappedResponseRow{id_hash(6), "p", 1, 40, 1, {8}}));
  moved("replace_wrapped_response (rewrap deletes the old wrapping token)");

  ASSERT_OK(db_->insert_secret_id(make_secret_id(1, "app", 1)));
  ASSERT_EQ(db_->use_secret_id(id_hash(1, 50), "app", 100, 5000, make_token(7))->outcome, SecretIdUseOutcome::kIssued);
  g = gen();  // a first use only inserts; whether it moves the generation does not matter
  auto replay = db_->use_secret_id(id_hash(1, 50), "app", 200, 5000, make_token(8));
  ASSERT_EQ(replay->outcome, SecretIdUseOutcome::kReplayed);
  ASSERT_EQ(replay->revoked_tokens, 1u);
  moved("use_secret_id replay (revokes what the secret ID issued)");
}

TEST_F(OneTimeStorageTest, NoncesAreRecordedOncePerScopeUntilSwept) {
  EXPECT_TRUE(*db_->record_nonce("cert:ab", "n1", 100));
  EXPECT_FALSE(*db_->record_nonce("cert:ab", "n1", 100));
  EXPECT_TRUE(*db_->record_nonce("cert:cd", "n1", 100)) << "scopes are separate";
  EXPECT_EQ(*db_->delete_expired_nonces(99), 0u);
  EXPECT_EQ(*db_->delete_expired_nonces(100), 2u);
  EXPECT_TRUE(*db_->record_nonce("cert:ab", "n1", 300));
}

}  // namespace
}  // namespace coffer::storage
