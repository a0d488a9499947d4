#include "compare/endpoint.h"

#include <gtest/gtest.h>

namespace shadowtap::compare {
namespace {

TEST(Endpoint, CollapsesNumbersAndUuids) {
  EXPECT_EQ(endpointOf("GET", "/users/123/orders/9f0c2b1e-3d4a-4c5b-8e6f-0a1b2c3d4e5f"),
            "GET /users/{n}/orders/{uuid}");
  EXPECT_EQ(endpointOf("DELETE", "/users/123/"), "DELETE /users/{n}/");
  EXPECT_EQ(endpointOf("GET", "/v2/items/0"), "GET /v2/items/{n}");
  EXPECT_EQ(endpointOf("GET", "/9F0C2B1E-3D4A-4C5B-8E6F-0A1B2C3D4E5F"), "GET /{uuid}");
}

TEST(Endpoint, KeepsWhatIsNotAnIdentifier) {
  EXPECT_EQ(endpointOf("GET", "/v2/items"), "GET /v2/items");
  EXPECT_EQ(endpointOf("GET", "/users/12a"), "GET /users/12a");
  EXPECT_EQ(endpointOf("GET", "/x/9f0c2b1e-3d4a-4c5b-8e6f-0a1b2c3d4e5"), "GET /x/9f0c2b1e-3d4a-4c5b-8e6f-0a1b2c3d4e5");
  EXPECT_EQ(endpointOf("GET", "/x/9f0c2b1e33d4a-4c5b-8e6f-0a1b2c3d4e5f"), "GET /x/9f0c2b1e33d4a-4c5b-8e6f-0a1b2c3d4e5f");
}

TEST(Endpoint, DropsQueryFragmentAndAuthority) {
  EXPECT_EQ(endpointOf("GET", "/search?q=1&page=2"), "GET /search");
  EXPECT_EQ(endpointOf("GET", "/a/7#frag"), "GET /a/{n}");
  EXPECT_EQ(endpointOf("GET", "http://api.example:8080/users/5?x"), "GET /users/{n}");
  EXPECT_EQ(endpointOf("GET", "http://api.example"), "GET /");
  EXPECT_EQ(endpointOf("OPTIONS", "*"), "OPTIONS *");
  EXPECT_EQ(endpointOf("GET", "/"), "GET /");
  EXPECT_EQ(endpointOf("GET", "?x=1"), "GET /");
}

TEST(Endpoint, IsBounded) {
  const std::string e = endpointOf("GET", "/" + std::string(10000, 'a'));
  EXPECT_EQ(e.size(), 4 + kMaxEndpointPath + 3);
  EXPECT_TRUE(e.ends_with("..."));
}

}  // namespace
}  // namespace shadowtap::compare
