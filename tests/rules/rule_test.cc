#include "rules/rule.h"

#include <gtest/gtest.h>

namespace shadowtap::rules {
namespace {

std::optional<Rule> parse(const std::string& text, std::string* error, bool mirrorOptional = false) {
  RuleDefaults d;
  d.suffix = "-dflt";
  d.connections = 7;
  return parseRule(text, d, mirrorOptional, error);
}

TEST(RuleTest, MinimalRuleTakesDefaults) {
  std::string error;
  auto r = parse("port=8000,mirror=httpbin-mirror:8000", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->port, 8000);
  EXPECT_EQ(r->mirror, "httpbin-mirror:8000");
  EXPECT_EQ(r->percentage, 100.0);
  EXPECT_EQ(r->sampleBasisPoints(), 10000u);
  EXPECT_EQ(r->suffix, "-dflt");
  EXPECT_EQ(r->connections, 7u);
  EXPECT_EQ(r->maxConnections, 1024u) << "the pool grows from the floor to the default maximum";
  EXPECT_EQ(r->maxRps, 0u);
  EXPECT_EQ(r->dropPolicy, DropPolicy::kNewest);
  EXPECT_TRUE(r->methods.empty());
  EXPECT_TRUE(r->headers.empty());
  EXPECT_TRUE(r->dropHeaders.empty());
  EXPECT_FALSE(r->dst);
}

// Issue 21: the pool grows from the floor (connections) to maxConnections; a
// maximum below the floor is a fixed pool of the floor, and connections=N in the
// rule a fixed pool of N.
TEST(RuleTest, ConnectionFloorAndMaximum) {
  RuleDefaults d;
  d.connections = 7;
  d.maxConnections = 4;
  std::string error;
  auto r = parseRule("port=80,mirror=a:1", d, false, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->connections, 7u);
  EXPECT_EQ(r->maxConnections, 7u);
  d.maxConnections = 100;
  r = parseRule("port=80,mirror=a:1,connections=30", d, false, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->connections, 30u);
  EXPECT_EQ(r->maxConnections, 30u);
  auto grown = parseRule("port=80,mirror=a:1", d, false, &error);
  ASSERT_TRUE(grown) << error;
  d.maxConnections = 200;
  auto more = parseRule("port=80,mirror=a:1", d, false, &error);
  ASSERT_TRUE(more) << error;
  EXPECT_FALSE(grown->sameAs(*more)) << "a reload must see a changed maximum";
}

TEST(RuleTest, EveryKey) {
  std::string error;
  auto r = parse(
      "port=9000,mirror=[2001:db8::2]:80,percentage=12.5,suffix=-canary,dst=198.18.0.0/24,methods=get|HEAD,"
      "header=x-shadowtap: 1 ,header=X-Env:staging,drop-header=Authorization,drop-header=cookie,connections=3,"
      "queue=10,queue-mib=2,max-rps=50,drop-policy=oldest",
      &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->port, 9000);
  EXPECT_EQ(r->mirror, "[2001:db8::2]:80");
  EXPECT_EQ(r->sampleBasisPoints(), 1250u);
  EXPECT_EQ(r->suffix, "-canary");
  ASSERT_TRUE(r->dst);
  EXPECT_EQ(r->dst->family, 4);
  EXPECT_EQ(r->dst->length, 24);
  EXPECT_EQ(r->methods, (std::vector<std::string>{"GET", "HEAD"}));
  ASSERT_EQ(r->headers.size(), 2u);
  EXPECT_EQ(r->headers[0], (std::pair<std::string, std::string>{"x-shadowtap", "1"}));
  EXPECT_EQ(r->headers[1], (std::pair<std::string, std::string>{"X-Env", "staging"}));
  EXPECT_EQ(r->dropHeaders, (std::vector<std::string>{"authorization", "cookie"}));
  EXPECT_EQ(r->connections, 3u);
  EXPECT_EQ(r->maxConnections, 3u) << "connections=N in a rule is a fixed pool";
  EXPECT_EQ(r->queue, 10u);
  EXPECT_EQ(r->queueMiB, 2u);
  EXPECT_EQ(r->maxRps, 50u);
  EXPECT_EQ(r->dropPolicy, DropPolicy::kOldest);
}

TEST(RuleTest, MirrorOptionalOnlyInDryRun) {
  std::string error;
  EXPECT_FALSE(parse("port=8000", &error));
  EXPECT_NE(error.find("mirror=HOST:PORT is required"), std::string::npos) << error;
  EXPECT_TRUE(parse("port=8000", &error, /*mirrorOptional=*/true));
}

struct Bad {
  const char* text;
  const char* mention;  // must appear in the error
};

TEST(RuleTest, InvalidRulesQuoteTheText) {
  const Bad cases[] = {
      {"mirror=a:1", "port=N is required"},
      {"port=0,mirror=a:1", "'port=0'"},
      {"port=70000,mirror=a:1", "'port=70000'"},
      {"port=80x,mirror=a:1", "'port=80x'"},
      {"port=80,port=81,mirror=a:1", "port given twice"},
      {"port=80,mirror=a", "'mirror=a'"},
      {"port=80,mirror=a:0", "'mirror=a:0'"},
      {"port=80,mirror=a:1,percentage=101", "'percentage=101'"},
      {"port=80,mirror=a:1,percentage=-1", "'percentage=-1'"},
      {"port=80,mirror=a:1,percentage=abc", "'percentage=abc'"},
      {"port=80,mirror=a:1,suffix=a/b", "'suffix=a/b'"},
      {"port=80,mirror=a:1,dst=10.0.0.0/33", "10.0.0.0/33"},
      {"port=80,mirror=a:1,dst=nope", "'nope'"},
      {"port=80,mirror=a:1,methods=GET|", "'' is not a method"},
      {"port=80,mirror=a:1,methods=GE T", "'GE T'"},
      {"port=80,mirror=a:1,header=novalue", "NAME:VALUE"},
      {"port=80,mirror=a:1,header=bad name:1", "'bad name'"},
      {"port=80,mirror=a:1,header=Host:x", "cannot be added"},
      {"port=80,mirror=a:1,header=content-length:3", "cannot be added"},
      {"port=80,mirror=a:1,drop-header=Transfer-Encoding", "cannot be removed"},
      {"port=80,mirror=a:1,connections=0", "'connections=0'"},
      {"port=80,mirror=a:1,max-rps=x", "'max-rps=x'"},
      {"port=80,mirror=a:1,drop-policy=random", "'drop-policy=random'"},
      {"port=80,mirror=a:1,colour=blue", "unknown key 'colour'"},
      {"port=80,mirror=a:1,", "empty item"},
      {"port=80,,mirror=a:1", "empty item"},
      {"port=80,mirror", "'mirror' is not key=value"},
      {"port=80,mirror=", "empty value"},
  };
  for (const Bad& c : cases) {
    std::string error;
    EXPECT_FALSE(parse(c.text, &error)) << c.text;
    EXPECT_NE(error.find(std::string("rule '") + c.text + "'"), std::string::npos) << error;
    EXPECT_NE(error.find(c.mention), std::string::npos) << c.text << " -> " << error;
  }
}

TEST(RuleTest, CompareAndSecondary) {
  std::string error;
  auto r = parse("port=8000,mirror=v2:8000,compare=true,secondary=v1-copy:8000", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(r->compare);
  EXPECT_EQ(r->secondary, "v1-copy:8000");
  auto plain = parse("port=8000,mirror=v2:8000", &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_FALSE(plain->compare);
  EXPECT_FALSE(r->sameAs(*plain)) << "a reload that turns compare on is a new rule";
  auto off = parse("port=8000,mirror=v2:8000,compare=false", &error);
  ASSERT_TRUE(off) << error;
  EXPECT_TRUE(off->sameAs(*plain));
  EXPECT_FALSE(parse("port=8000,mirror=v2:8000,compare=yes", &error));
  EXPECT_NE(error.find("compare must be true or false"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=8000,mirror=v2:8000,secondary=v1:8000", &error));
  EXPECT_NE(error.find("compare=true"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=8000,mirror=v2:8000,compare=true,secondary=nohostport", &error));
}

TEST(RuleTest, TlsToTheMirror) {
  std::string error;
  auto plain = parse("port=443,mirror=v2:8443", &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_FALSE(plain->tls);
  EXPECT_TRUE(plain->tlsVerify);
  auto r = parse("port=443,mirror=v2:8443,tls=true,tls-verify=false,tls-ca=/dev/null", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(r->tls);
  EXPECT_FALSE(r->tlsVerify);
  EXPECT_EQ(r->tlsCa, "/dev/null");
  EXPECT_NE(r->describe().find("TLS to the mirror (not verified)"), std::string::npos) << r->describe();
  EXPECT_FALSE(r->sameAs(*plain)) << "a reload that turns TLS on is a new rule";
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls=yes", &error));
  EXPECT_NE(error.find("tls must be true or false"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls-verify=false", &error));
  EXPECT_NE(error.find("only make sense with tls=true"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls=true,tls-ca=/nonexistent/ca.pem", &error));
  EXPECT_NE(error.find("not a readable file"), std::string::npos) << error;
}

TEST(RuleTest, RuleSetRejectsTwoRulesForTheSameTraffic) {
  std::string error;
  auto a = parse("port=80,mirror=a:1", &error);
  auto b = parse("port=80,mirror=b:1", &error);
  auto c = parse("port=80,mirror=b:1,dst=10.0.0.0/8", &error);
  auto d = parse("port=81,mirror=b:1", &error);
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(checkRuleSet({*a, *c, *d}), "");
  std::string why = checkRuleSet({*a, *d, *b});
  EXPECT_NE(why.find("'port=80,mirror=b:1'"), std::string::npos) << why;
  EXPECT_NE(why.find("'port=80,mirror=a:1'"), std::string::npos) << why;
}

}  // namespace
}  // namespace shadowtap::rules
