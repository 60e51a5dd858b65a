// daemon/instance_lock: one cofferd per database (flock on "<db>.lock", released with the holder).
#include "daemon/instance_lock.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace coffer::daemon {
namespace {

class InstanceLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "coffer-lock-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    db_ = dir_ + "/coffer.db";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_, db_;
};

TEST_F(InstanceLockTest, TheSecondHolderIsRefusedUntilTheFirstLetsGo) {
  auto first = lock_database(db_);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->path(), db_ + ".lock");
  struct stat st {};
  ASSERT_EQ(::stat((db_ + ".lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // flock is per open file: a second open in the same process conflicts like another process.
  auto second = lock_database(db_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::unavailable);
  EXPECT_EQ(second.status().message(), "another cofferd is serving " + db_ + " (it holds " + db_ +
                                           ".lock); run one cofferd per database");

  // Moving the lock keeps it held; destroying the holder releases it.
  InstanceLock moved = std::move(first).value();
  EXPECT_FALSE(lock_database(db_).ok());
  moved = InstanceLock();
  EXPECT_TRUE(lock_database(db_).ok());
}

TEST_F(InstanceLockTest, ASymlinkOrAMissingDirectoryIsRefusedWithTheReason) {
  ASSERT_EQ(::symlink((dir_ + "/elsewhere").c_str(), (db_ + ".lock").c_str()), 0);
  auto linked = lock_database(db_);
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), Code::failed_precondition);
  EXPECT_NE(linked.status().message().find("cannot open the lock file " + db_ + ".lock"), std::string::npos)
      << linked.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/elsewhere")) << "the link was followed";

  auto missing = lock_database(dir_ + "/no/such/dir/coffer.db");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("No such file or directory"), std::string::npos)
      << missing.status().message();
}

}  // namespace
}  // namespace coffer::daemon
