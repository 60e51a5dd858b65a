// Tests for keys/credential_file: what is accepted as a credential file, what is refused and
// with which message, and how $CREDENTIALS_DIRECTORY is resolved.
#include "keys/credential_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace coffer::keys {
namespace {

namespace fs = std::filesystem;

class CredentialFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "coffer-cred-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Writes `content` to a file in the test directory with `mode`, returns its path.
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    {
      std::ofstream out(path, std::ios::binary);
      out << content;
    }
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(CredentialFileTest, ReadsAndStripsOneTrailingNewline) {
  auto pin = read_credential_file(write("pin", "1234\n"));
  ASSERT_TRUE(pin.ok()) << pin.status().to_string();
  EXPECT_EQ(pin->view(crypto::reveal()), "1234");
}

TEST_F(CredentialFileTest, StripsCrLf) {
  auto pin = read_credential_file(write("pin", "1234\r\n"));
  ASSERT_TRUE(pin.ok()) << pin.status().to_string();
  EXPECT_EQ(pin->view(crypto::reveal()), "1234");
}

TEST_F(CredentialFileTest, StripsOnlyOneNewlineAndKeepsOtherBytes) {
  auto a = read_credential_file(write("a", "12 34\n\n"));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->view(crypto::reveal()), "12 34\n");
  auto b = read_credential_file(write("b", "abc"));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->view(crypto::reveal()), "abc");
  auto c = read_credential_file(write("c", "abc\r"));  // a lone CR is content
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->view(crypto::reveal()), "abc\r");
}

TEST_F(CredentialFileTest, AcceptsOwnerOnlyModes) {
  EXPECT_TRUE(read_credential_file(write("r", "x", 0400)).ok());
  EXPECT_TRUE(read_credential_file(write("rw", "x", 0600)).ok());
}

TEST_F(CredentialFileTest, WorldReadableModeIsRefusedWithTheFix) {
  const std::string path = write("pin", "1234\n", 0644);
  auto r = read_credential_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::permission_denied);
  EXPECT_NE(r.status().message().find("0644"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("chmod 600 " + path), std::string::npos)
      << r.status().message();
}

TEST_F(CredentialFileTest, GroupAccessIsRefused) {
  EXPECT_EQ(read_credential_file(write("g", "x", 0640)).status().code(), Code::permission_denied);
  EXPECT_EQ(read_credential_file(write("w", "x", 0620)).status().code(), Code::permission_denied);
  EXPECT_EQ(read_credential_file(write("o", "x", 0601)).status().code(), Code::permission_denied);
}

TEST_F(CredentialFileTest, SymlinkIsRefusedEvenToAGoodFile) {
  const std::string target = write("pin", "1234\n");
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto r = read_credential_file(link);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::permission_denied);
  EXPECT_NE(r.status().message().find("symbolic link"), std::string::npos) << r.status().message();
}

TEST_F(CredentialFileTest, HardLinkedFileIsRefused) {
  const std::string path = write("pin", "1234\n");
  ASSERT_EQ(::link(path.c_str(), (dir_ + "/second-name").c_str()), 0);
  auto r = read_credential_file(path);
  EXPECT_EQ(r.status().code(), Code::permission_denied) << r.status().to_string();
}

TEST_F(CredentialFileTest, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = dir_ + "/absent";
  auto r = read_credential_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::not_found);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
}

TEST_F(CredentialFileTest, DirectoryAndFifoAreRefusedWithoutBlocking) {
  const std::string sub = dir_ + "/sub";
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  EXPECT_EQ(read_credential_file(sub).status().code(), Code::invalid_argument);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Without O_NONBLOCK this open would hang until a writer appeared.
  EXPECT_EQ(read_credential_file(fifo).status().code(), Code::invalid_argument);
}

TEST_F(CredentialFileTest, EmptyAndOversizedFilesAreRefused) {
  EXPECT_EQ(read_credential_file(write("empty", "")).status().code(), Code::invalid_argument);
  EXPECT_EQ(read_credential_file(write("nl", "\n")).status().code(), Code::invalid_argument);
  EXPECT_TRUE(read_credential_file(write("max", std::string(kMaxCredentialSize, 'x'))).ok());
  auto big = read_credential_file(write("big", std::string(kMaxCredentialSize + 1, 'x')));
  EXPECT_EQ(big.status().code(), Code::invalid_argument) << big.status().to_string();
}

TEST_F(CredentialFileTest, FileOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  const std::string path = write("pin", "1234\n");
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  auto r = read_credential_file(path);
  EXPECT_EQ(r.status().code(), Code::permission_denied) << r.status().to_string();
  EXPECT_NE(r.status().message().find("65534"), std::string::npos) << r.status().message();
}

// Sets or unsets CREDENTIALS_DIRECTORY for one test and restores it afterwards.
class CredentialsDirectory {
 public:
  explicit CredentialsDirectory(const char* value) {
    if (const char* old = std::getenv("CREDENTIALS_DIRECTORY"); old != nullptr) old_ = old;
    if (value != nullptr) {
      ::setenv("CREDENTIALS_DIRECTORY", value, 1);
    } else {
      ::unsetenv("CREDENTIALS_DIRECTORY");
    }
  }
  ~CredentialsDirectory() {
    if (old_.empty()) {
      ::unsetenv("CREDENTIALS_DIRECTORY");
    } else {
      ::setenv("CREDENTIALS_DIRECTORY", old_.c_str(), 1);
    }
  }

 private:
  std::string old_;
};

TEST(CredentialPath, JoinsTheDirectoryAndTheName) {
  CredentialsDirectory env("/run/credentials/cofferd.service");
  auto p = credential_path("hsm-pin");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(*p, "/run/credentials/cofferd.service/hsm-pin");
}

TEST(CredentialPath, UnsetDirectoryExplainsTheSystemdSetup) {
  CredentialsDirectory env(nullptr);
  auto p = credential_path("hsm-pin");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::failed_precondition);
  EXPECT_NE(p.status().message().find("LoadCredentialEncrypted=hsm-pin"), std::string::npos)
      << p.status().message();
  EXPECT_NE(p.status().message().find("LoadCredential="), std::string::npos);
}

TEST(CredentialPath, RelativeDirectoryIsRefused) {
  CredentialsDirectory env("creds");
  EXPECT_EQ(credential_path("hsm-pin").status().code(), Code::failed_precondition);
}

TEST(CredentialPath, NamesThatAreNotPlainFileNamesAreRefused) {
  CredentialsDirectory env("/run/credentials/x");
  for (const char* bad : {"", ".", "..", "../etc/shadow", "a/b", "/abs"}) {
    EXPECT_EQ(credential_path(bad).status().code(), Code::invalid_argument) << "'" << bad << "'";
  }
}

TEST_F(CredentialFileTest, PathAndReadWorkTogether) {
  CredentialsDirectory env(dir_.c_str());
  write("hsm-pin", "s3cret\n");
  auto path = credential_path("hsm-pin");
  ASSERT_TRUE(path.ok()) << path.status().to_string();
  auto pin = read_credential_file(*path);
  ASSERT_TRUE(pin.ok()) << pin.status().to_string();
  EXPECT_EQ(pin->view(crypto::reveal()), "s3cret");
}

}  // namespace
}  // namespace coffer::keys
