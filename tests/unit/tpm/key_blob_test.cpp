// The TPM key-blob file: written once with mode 0600 and never replaced; anything that is not
// a complete file of this format reads as data_loss (never as "no key", which would invite init).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tpm/key_blob.h"

namespace coffer::tpm {
namespace {

class KeyBlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffer-key-blob-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/mk.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static KeyBlob sample() {
    KeyBlob b;
    b.key_id = "coffer-mk-1";
    b.mechanism = "TPM2_RSA_OAEP_SHA256";
    b.pcrs = {7, 16};
    b.pcr_hex = {{7, "aa"}, {16, "00"}};
    b.auth_value = true;
    b.srk_name_hex = "000b11";
    b.public_area = {1, 2, 3};
    b.private_area = {4, 5, 6};
    return b;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(KeyBlobTest, RoundTripsWithMode0600AndNoLeftovers) {
  ASSERT_TRUE(write_key_blob(path_, sample()).ok());
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = read_key_blob(path_);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_TRUE(back->has_value());
  const KeyBlob& b = **back;
  EXPECT_EQ(b.key_id, "coffer-mk-1");
  EXPECT_EQ(b.pcrs, (std::vector<std::uint32_t>{7, 16}));
  EXPECT_EQ(b.pcr_hex.at(16), "00");
  EXPECT_TRUE(b.auth_value);
  EXPECT_EQ(b.srk_name_hex, "000b11");
  EXPECT_EQ(b.public_area, (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_EQ(b.private_area, (std::vector<std::uint8_t>{4, 5, 6}));
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1) << "temporary file left behind";
}

TEST_F(KeyBlobTest, MissingFileIsNoKeyAndAnExistingOneIsNeverReplaced) {
  auto none = read_key_blob(path_);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(write_key_blob(path_, sample()).ok());
  KeyBlob other = sample();
  other.key_id = "intruder";
  EXPECT_EQ(write_key_blob(path_, other).code(), Code::already_exists);
  EXPECT_EQ((*read_key_blob(path_))->key_id, "coffer-mk-1");
}

TEST_F(KeyBlobTest, DamagedFilesAreDataLoss) {
  ASSERT_TRUE(write_key_blob(path_, sample()).ok());
  std::ifstream in(path_);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cases[] = {
      "", "not json", "[]", good.substr(0, good.size() / 2),
      std::string(good).replace(good.find("coffer-tpm-key-v1"), 17, "coffer-tpm-key-v9"),
      std::string(good).replace(good.find("\"public\": \""), 11, "\"public\": \"zz"),
  };
  for (const auto& text : cases) {
    std::ofstream(path_, std::ios::trunc) << text;
    auto r = read_key_blob(path_);
    EXPECT_EQ(r.status().code(), Code::data_loss) << "for: " << text.substr(0, 40);
  }
}

TEST_F(KeyBlobTest, PcrListsOutsideTheSelectionBitmapAreDataLoss) {
  for (const auto& pcrs : {std::vector<std::uint32_t>{200}, std::vector<std::uint32_t>{},
                           std::vector<std::uint32_t>{16, 7}, std::vector<std::uint32_t>{7, 7}}) {
    std::filesystem::remove(path_);
    KeyBlob b = sample();
    b.pcrs = pcrs;
    ASSERT_TRUE(write_key_blob(path_, b).ok());
    EXPECT_EQ(read_key_blob(path_).status().code(), Code::data_loss);
  }
}

}  // namespace
}  // namespace coffer::tpm
