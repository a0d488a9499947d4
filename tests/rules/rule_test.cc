#include "rules/rule.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

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
  EXPECT_EQ(r->first().target, "httpbin-mirror:8000");
  EXPECT_EQ(r->first().percentage, 100.0);
  EXPECT_EQ(r->first().sampleBasisPoints(), 10000u);
  EXPECT_EQ(r->first().suffix, "-dflt");
  EXPECT_EQ(r->first().connections, 7u);
  EXPECT_EQ(r->first().maxConnections, 1024u) << "the pool grows from the floor to the default maximum";
  EXPECT_EQ(r->first().maxRps, 0u);
  EXPECT_EQ(r->first().dropPolicy, DropPolicy::kNewest);
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
  EXPECT_EQ(r->first().connections, 7u);
  EXPECT_EQ(r->first().maxConnections, 7u);
  d.maxConnections = 100;
  r = parseRule("port=80,mirror=a:1,connections=30", d, false, &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->first().connections, 30u);
  EXPECT_EQ(r->first().maxConnections, 30u);
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
  EXPECT_EQ(r->first().target, "[2001:db8::2]:80");
  EXPECT_EQ(r->first().sampleBasisPoints(), 1250u);
  EXPECT_EQ(r->first().suffix, "-canary");
  ASSERT_TRUE(r->dst);
  EXPECT_EQ(r->dst->family, 4);
  EXPECT_EQ(r->dst->length, 24);
  EXPECT_EQ(r->methods, (std::vector<std::string>{"GET", "HEAD"}));
  ASSERT_EQ(r->headers.size(), 2u);
  EXPECT_EQ(r->headers[0], (std::pair<std::string, std::string>{"x-shadowtap", "1"}));
  EXPECT_EQ(r->headers[1], (std::pair<std::string, std::string>{"X-Env", "staging"}));
  EXPECT_EQ(r->dropHeaders, (std::vector<std::string>{"authorization", "cookie"}));
  EXPECT_EQ(r->first().connections, 3u);
  EXPECT_EQ(r->first().maxConnections, 3u) << "connections=N in a rule is a fixed pool";
  EXPECT_EQ(r->first().queue, 10u);
  EXPECT_EQ(r->first().queueMiB, 2u);
  EXPECT_EQ(r->first().maxRps, 50u);
  EXPECT_EQ(r->first().dropPolicy, DropPolicy::kOldest);
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

// The secondary has its own TLS keys after ';' (the rule's tls= keys are the
// mirrors'); they are part of what a reload compares.
TEST(RuleTest, TheSecondarysOwnTlsKeys) {
  std::string error;
  auto r = parse("port=8000,mirror=v2:8000,tls=true,compare=true,secondary=v1:8443;tls=true;tls-verify=false", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->secondary, "v1:8443");
  EXPECT_TRUE(r->secondaryTls);
  EXPECT_FALSE(r->secondaryTlsVerify);
  EXPECT_TRUE(r->first().tls);
  EXPECT_EQ(r->describe().find("noise from v1:8443 over TLS") != std::string::npos, true) << r->describe();
  auto cleartext = parse("port=8000,mirror=v2:8000,tls=true,compare=true,secondary=v1:8443", &error);
  ASSERT_TRUE(cleartext) << error;
  EXPECT_FALSE(cleartext->secondaryTls) << "the rule's tls=true is the mirrors'";
  EXPECT_FALSE(r->sameAs(*cleartext)) << "a reload must see the secondary's TLS change";
  auto withCa = parse("port=8000,mirror=v2:8000,compare=true,secondary=v1:8443;tls=true;tls-ca=/dev/null", &error);
  ASSERT_TRUE(withCa) << error;
  EXPECT_EQ(withCa->secondaryTlsCa, "/dev/null");
  EXPECT_TRUE(withCa->secondaryTlsVerify);
  EXPECT_FALSE(withCa->first().tls);

  const std::pair<std::string, std::string> bad[] = {
      {"secondary=v1:8443;tls-verify=false", "only make sense with its tls=true"},
      {"secondary=v1:8443;tls=true;tls=false", "tls given twice for the secondary"},
      {"secondary=v1:8443;tls=maybe", "tls must be true or false"},
      {"secondary=v1:8443;percentage=5", "unknown key 'percentage' for the secondary"},
      {"secondary=v1:8443;tls", "'tls' is not key=value"},
      {"secondary=v1:8443;tls=true;tls-ca=/no/such/file", "not a readable file"},
      {"secondary=v1:8443;tls=true,tls-verify=false", "the secondary's go after ';'"},
  };
  for (const auto& [secondary, want] : bad) {
    EXPECT_FALSE(parse("port=8000,mirror=v2:8000,compare=true," + secondary, &error)) << secondary;
    EXPECT_NE(error.find(want), std::string::npos) << secondary << ": " << error;
  }
}

// A tls-ca file rotated in place (same path, new certificates, as a mounted
// secret is) makes the rule differ on reload, so its connections load them;
// an untouched file keeps the rule.
TEST(RuleTest, ARotatedTlsCaFileMakesTheRuleNew) {
  char path[] = "/tmp/st-rule-ca-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string error;
  const std::string text = "port=443,mirror=v2:8443,tls=true,tls-ca=" + std::string(path) +
                           ",compare=true,secondary=v1:8443;tls=true;tls-ca=" + std::string(path);
  auto before = parse(text, &error);
  ASSERT_TRUE(before) << error;
  auto again = parse(text, &error);
  ASSERT_TRUE(again) << error;
  EXPECT_TRUE(before->sameAs(*again));
  const timespec later[2] = {{0, UTIME_OMIT}, {before->first().tlsCaStamp / 1'000'000'000 + 60, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path, later, 0), 0);
  auto rotated = parse(text, &error);
  ASSERT_TRUE(rotated) << error;
  EXPECT_FALSE(before->sameAs(*rotated));
  EXPECT_NE(rotated->first().tlsCaStamp, before->first().tlsCaStamp);
  EXPECT_NE(rotated->secondaryTlsCaStamp, before->secondaryTlsCaStamp);
  unlink(path);
}

TEST(RuleTest, TlsToTheMirror) {
  std::string error;
  auto plain = parse("port=443,mirror=v2:8443", &error);
  ASSERT_TRUE(plain) << error;
  EXPECT_FALSE(plain->first().tls);
  EXPECT_TRUE(plain->first().tlsVerify);
  auto r = parse("port=443,mirror=v2:8443,tls=true,tls-verify=false,tls-ca=/dev/null", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_TRUE(r->first().tls);
  EXPECT_FALSE(r->first().tlsVerify);
  EXPECT_EQ(r->first().tlsCa, "/dev/null");
  EXPECT_NE(r->describe().find("TLS to the mirror (not verified)"), std::string::npos) << r->describe();
  EXPECT_FALSE(r->sameAs(*plain)) << "a reload that turns TLS on is a new rule";
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls=yes", &error));
  EXPECT_NE(error.find("tls must be true or false"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls-verify=false", &error));
  EXPECT_NE(error.find("only make sense with tls=true"), std::string::npos) << error;
  EXPECT_FALSE(parse("port=443,mirror=v2:8443,tls=true,tls-ca=/nonexistent/ca.pem", &error));
  EXPECT_NE(error.find("not a readable file"), std::string::npos) << error;
}

// Issue 19: several mirrors per rule. The rule's keys are every mirror's
// defaults; keys after ';' inside mirror= are that mirror's own.
TEST(RuleTest, SeveralMirrorsEachWithItsOwnKeys) {
  std::string error;
  auto r = parse(
      "port=8000,percentage=50,host=keep,max-rps=9,mirror=v2:8000,"
      "mirror=v3:9000;percentage=12.5;host=staging.svc;suffix=-x;connections=3;queue=7;queue-mib=2;max-rps=0;"
      "drop-policy=oldest,methods=GET,sample=request",
      &error);
  ASSERT_TRUE(r) << error;
  ASSERT_EQ(r->mirrors.size(), 2u);
  const MirrorSpec& a = r->mirrors[0];
  const MirrorSpec& b = r->mirrors[1];
  EXPECT_EQ(a.target, "v2:8000");
  EXPECT_EQ(a.percentage, 50.0);
  EXPECT_EQ(a.hostMode, HostMode::kKeep);
  EXPECT_EQ(a.maxRps, 9u);
  EXPECT_EQ(a.suffix, "-dflt");
  EXPECT_EQ(a.connections, 7u);
  EXPECT_EQ(a.dropPolicy, DropPolicy::kNewest);
  EXPECT_EQ(b.target, "v3:9000");
  EXPECT_EQ(b.sampleBasisPoints(), 1250u);
  EXPECT_EQ(b.hostMode, HostMode::kLiteral);
  EXPECT_EQ(b.hostLiteral, "staging.svc");
  EXPECT_EQ(b.suffix, "-x");
  EXPECT_EQ(b.connections, 3u);
  EXPECT_EQ(b.maxConnections, 3u);
  EXPECT_EQ(b.queue, 7u);
  EXPECT_EQ(b.queueMiB, 2u);
  EXPECT_EQ(b.maxRps, 0u) << "a mirror's own key wins over the rule's";
  EXPECT_EQ(b.dropPolicy, DropPolicy::kOldest);
  EXPECT_EQ(r->methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(r->sampleMode, SampleMode::kRequest);
  EXPECT_EQ(r->describe(),
            "port=8000 -> v2:8000 (50% of requests, host kept, max 9 rps) + v3:9000 (12.5% of requests, host "
            "staging.svc), methods GET");

  // The order of the rule's keys and the mirrors does not matter to the settings.
  auto same = parse("port=8000,mirror=v2:8000,sample=request,methods=GET,mirror=v3:9000;percentage=12.5;host=staging."
                    "svc;suffix=-x;connections=3;queue=7;queue-mib=2;max-rps=0;drop-policy=oldest,max-rps=9,"
                    "host=keep,percentage=50",
                    &error);
  ASSERT_TRUE(same) << error;
  EXPECT_TRUE(r->sameAs(*same));
  auto fewer = parse("port=8000,percentage=50,host=keep,max-rps=9,mirror=v2:8000,methods=GET,sample=request", &error);
  ASSERT_TRUE(fewer) << error;
  EXPECT_FALSE(r->sameAs(*fewer)) << "a reload that adds or removes a mirror is a new rule";
}

// One mirror written either way is the same rule: the single-mirror form is unchanged.
TEST(RuleTest, OneMirrorWithItsOwnKeysIsTheSameAsTheRuleKeys) {
  std::string error;
  auto plain = parse("port=80,mirror=a:1,percentage=20,host=keep,tls=true", &error);
  auto scoped = parse("port=80,mirror=a:1;percentage=20;host=keep;tls=true", &error);
  ASSERT_TRUE(plain && scoped) << error;
  EXPECT_TRUE(plain->sameAs(*scoped));
  EXPECT_EQ(plain->mirrors.size(), 1u);
  EXPECT_EQ(plain->describe(), "port=80 -> a:1 (20% of connections, host kept, TLS to the mirror)");
}

// The kernel copies the largest share of connections; with agent sampling, all.
TEST(RuleTest, KernelCopiesTheLargestMirrorShare) {
  std::string error;
  auto r = parse("port=80,mirror=a:1;percentage=30,mirror=b:1;percentage=70,mirror=c:1;percentage=5", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->kernelSampleBasisPoints(), 7000u);
  r = parse("port=80,sample=header:x-user,mirror=a:1;percentage=30,mirror=b:1;percentage=70", &error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->kernelSampleBasisPoints(), 10000u);
}

TEST(RuleTest, BadMirrorsAreOneClearLine) {
  const Bad cases[] = {
      {"port=80,mirror=a:1,mirror=a:1", "mirror a:1 given twice"},
      {"port=80,mirror=a:1;percentage=101", "'mirror=a:1;percentage=101': percentage must be a number from 0 to 100"},
      {"port=80,mirror=a:1;percentage=5;percentage=6", "percentage given twice"},
      {"port=80,mirror=a:1;host=a b", "host must be suffix, keep"},
      {"port=80,mirror=a:1;suffix=a/b", "suffix may contain only"},
      {"port=80,mirror=a:1;connections=0", "connections must be a number"},
      {"port=80,mirror=a:1;drop-policy=random", "drop-policy must be newest or oldest"},
      {"port=80,mirror=a:1;tls=yes", "tls must be true or false"},
      {"port=80,mirror=a:1;tls-verify=false", "only make sense with tls=true"},
      {"port=80,mirror=a:1;sample=request", "'sample' is a key of the whole rule, not of one mirror"},
      {"port=80,mirror=a:1;methods=GET", "'methods' is a key of the whole rule"},
      {"port=80,mirror=a:1;compare=true", "'compare' is a key of the whole rule"},
      {"port=80,mirror=a:1;colour=blue", "unknown key 'colour' for a mirror"},
      {"port=80,mirror=a:1;", "'' is not key=value"},
      {"port=80,mirror=a:1;percentage", "'percentage' is not key=value"},
      {"port=80,mirror=a:1;percentage=", "'percentage=' is not key=value"},
      {"port=80,mirror=a;percentage=5", "'mirror=a;percentage=5': expected host:port"},
      {"port=80,mirror=a:1,mirror=b:1,mirror=c:1,mirror=d:1,mirror=e:1,mirror=f:1,mirror=g:1,mirror=h:1,mirror=i:1",
       "more than 8 mirrors in one rule"},
  };
  for (const Bad& c : cases) {
    std::string error;
    EXPECT_FALSE(parse(c.text, &error)) << c.text;
    EXPECT_NE(error.find(std::string("rule '") + c.text + "'"), std::string::npos) << error;
    EXPECT_NE(error.find(c.mention), std::string::npos) << c.text << " -> " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  }
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
