// tls=true (issue 18 item 3): the SNI name of a rule's mirror connections and
// the client context's checks. The handshake itself is tested end to end
// (tests/e2e/test_tls.py: verified, refused, unverified).

#include "replay/tls_client.h"

#include <gtest/gtest.h>

namespace shadowtap::replay {
namespace {

// The SNI name a context sends for a rule's peer.
std::string sniName(const std::string& literalHost, const std::string& mirrorHostPort) {
  std::string error;
  auto config = TlsClientConfig::make(false, "", tlsPeer(literalHost, mirrorHostPort), &error);
  return config ? config->serverName() : "(no context: " + error + ")";
}

TEST(TlsClientTest, SniIsTheLiteralHostElseTheMirrorsNameNeverAnAddress) {
  EXPECT_EQ(sniName("", "httpbin-mirror:8443"), "httpbin-mirror");
  EXPECT_EQ(sniName("api.example:443", "httpbin-mirror:8443"), "api.example");
  EXPECT_EQ(sniName("api.example", "198.18.1.2:8443"), "api.example");
  EXPECT_EQ(sniName("", "198.18.1.2:8443"), "");
  EXPECT_EQ(sniName("", "[2001:db8::2]:8443"), "");
  EXPECT_EQ(tlsPeer("", "[2001:db8::2]:8443"), "2001:db8::2") << "an address is verified, not sent";
  EXPECT_EQ(tlsPeer("api.example:443", "198.18.1.2:8443"), "api.example");
}

TEST(TlsClientTest, ContextsAreMadeOrRefusedWithTheReason) {
  std::string error;
  auto unverified = TlsClientConfig::make(false, "", "mirror", &error);
  ASSERT_TRUE(unverified) << error;
  EXPECT_FALSE(unverified->verify());
  EXPECT_EQ(unverified->serverName(), "mirror");
  EXPECT_FALSE(TlsClientConfig::make(true, "/dev/null", "mirror", &error));
  EXPECT_NE(error.find("tls-ca=/dev/null"), std::string::npos) << error;
}

}  // namespace
}  // namespace shadowtap::replay
