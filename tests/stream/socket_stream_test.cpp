// SocketStream on real sockets (Unix socketpairs; no server needed): what a turn-ending read
// claims, that a claim never hides a FIN where the owner relies on the stream to find it, the
// hand-off to another event loop, a read freed with its io_context, and the TLS path.
#include "stream/socket_stream.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "tests/stream/socket_stream_fixture.hpp"

namespace pgvigil::stream {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace test_support;
using AfterClaim = SocketStream::AfterClaim;

TEST_F(SocketStreamTest, AReadThatEndsTheTurnClaimsTheSocketDrained) {
  peer_sends("C\0\0\0\x0DSELECT 1\0"s + kReadyIdle);
  const auto first = read_once(AfterClaim::try_first);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->ec);
  EXPECT_TRUE(first->bytes.ends_with(kReadyIdle));
  EXPECT_TRUE(stream_.drain_claimed());
}

TEST_F(SocketStreamTest, OtherEndingsClaimNothing) {
  peer_sends(kReadyInTransaction);
  ASSERT_TRUE(read_once(AfterClaim::try_first));
  EXPECT_FALSE(stream_.drain_claimed());
  peer_sends("D\0\0\0\x0A\0\x01\0\0\0\0"s);  // a DataRow: more may follow
  ASSERT_TRUE(read_once(AfterClaim::try_first));
  EXPECT_FALSE(stream_.drain_claimed());
}

TEST_F(SocketStreamTest, TryFirstFindsAFinThatCameWithTheAnswer) {
  // The read waits first, then the peer answers and closes at once: the event loop sees one
  // edge for both, and the read takes the answer, leaving the FIN queued behind it.
  const auto answer = read_while_peer_answers(AfterClaim::try_first, kReadyIdle, PeerThen::closes);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->bytes, kReadyIdle);
  ASSERT_TRUE(stream_.drain_claimed());
  // Nothing looked at the socket since, so the next read tries it first. No further edge would
  // come: waiting instead would never end.
  const auto next = read_once(AfterClaim::try_first);
  ASSERT_TRUE(next) << "the FIN queued behind the answer was not reported";
  EXPECT_EQ(next->ec, boost::asio::error::eof);
}

TEST_F(SocketStreamTest, WaitAfterAClaimLeavesTheFinToAPeek) {
  // The client side's choice: the next read waits without trying, and whoever holds the stream
  // must look (peek) where a FIN would matter. This is why.
  ASSERT_TRUE(read_while_peer_answers(AfterClaim::wait, kReadyIdle, PeerThen::closes));
  ASSERT_TRUE(stream_.drain_claimed());
  EXPECT_FALSE(read_once(AfterClaim::wait, 200ms)) << "the waiting read reported the FIN itself";
  EXPECT_EQ(stream_.peek(), SocketStream::Peek::closed);
}

TEST_F(SocketStreamTest, APeekChecksTheClaimAndTheNextReadStillSeesWhatArrivesLater) {
  peer_sends(kReadyIdle);
  ASSERT_TRUE(read_once(AfterClaim::try_first));
  ASSERT_TRUE(stream_.drain_claimed());
  EXPECT_EQ(stream_.peek(), SocketStream::Peek::nothing);
  EXPECT_FALSE(stream_.drain_claimed());
  // Nothing is there, so the read waits. (That it was queued without a first try, the system
  // call the claim saves, shows in strace, not here.)
  // Bytes and a close that arrive afterwards are reported by the event loop.
  const auto later =
      read_while_peer_answers(AfterClaim::try_first, "N\0\0\0\x04"s, PeerThen::waits);
  ASSERT_TRUE(later);
  EXPECT_FALSE(later->ec);
  EXPECT_EQ(later->bytes, "N\0\0\0\x04"s);
  EXPECT_EQ(stream_.peek(), SocketStream::Peek::nothing);
  peer_closes();
  EXPECT_EQ(stream_.peek(), SocketStream::Peek::closed);
  const auto end = read_once(AfterClaim::try_first);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->ec, boost::asio::error::eof);
}

TEST_F(SocketStreamTest, AHandedOffStreamWorksOnItsNewEventLoop) {
  boost::asio::io_context other;
  const auto handed = stream_.hand_off();
  EXPECT_FALSE(stream_.is_open());
  SocketStream adopted(other.get_executor(), handed);
  ASSERT_TRUE(adopted.is_open());
  peer_sends("hello");
  std::optional<Outcome> outcome;
  adopted.async_read_some(buffer_, AfterClaim::wait, EndsWithReadyIdle{},
                          [&](boost::system::error_code ec, std::size_t n) {
                            outcome = Outcome{ec, std::string(buffer_.data(), n)};
                          });
  other.run_for(1s);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->bytes, "hello");
  bool needs_read = false;
  boost::system::error_code ec;
  EXPECT_EQ(adopted.try_write("back"s, ec, needs_read), 4u);
  char answer[8] = {};
  EXPECT_EQ(::recv(peer_, answer, sizeof answer, 0), 4);
  EXPECT_EQ(std::string(answer, 4), "back");
}

TEST_F(SocketStreamTest, AStreamTakesItsHandedOffSocketToAnotherEventLoopInPlace) {
  boost::asio::io_context other;
  // The stream goes back to the fixture's event loop before `other` is destroyed, whatever ends
  // the test: its descriptor object keeps its event loop's service, and the fixture's teardown
  // comes after `other` is gone.
  const auto back_home = [this] { stream_.adopt(context_.get_executor(), stream_.hand_off()); };
  struct OnExit {
    decltype(back_home)& run;
    ~OnExit() { run(); }
  } on_exit{back_home};
  ASSERT_TRUE(stream_.adopt(other.get_executor(), stream_.hand_off()));
  ASSERT_TRUE(stream_.is_open());
  EXPECT_TRUE(stream_.get_executor() == other.get_executor());
  peer_sends("hello");
  std::optional<Outcome> outcome;
  stream_.async_read_some(buffer_, AfterClaim::wait, EndsWithReadyIdle{},
                          [&](boost::system::error_code ec, std::size_t n) {
                            outcome = Outcome{ec, std::string(buffer_.data(), n)};
                          });
  other.run_for(1s);
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->ec);
  EXPECT_EQ(outcome->bytes, "hello");
  stream_.close();
  char end[1];
  EXPECT_EQ(::recv(peer_, end, sizeof end, 0), 0);
}

TEST_F(SocketStreamTest, SeveralPiecesGoOutInOrderInOneWrite) {
  const std::string a = "first,", b = "second,", c = "third";
  const std::span<const char> pieces[] = {a, b, c};
  boost::system::error_code ec;
  bool needs_read = false;
  EXPECT_EQ(stream_.try_write(pieces, ec, needs_read), a.size() + b.size() + c.size());
  EXPECT_FALSE(ec);
  char received[64] = {};
  EXPECT_EQ(::recv(peer_, received, sizeof received, 0), 18);
  EXPECT_EQ(std::string(received, 18), "first,second,third");
}

TEST_F(SocketStreamTest, ABorrowedDescriptorIsReleasedNotClosed) {
  int fds[2];
  stream_socketpair(fds);
  {
    SocketStream borrowed(context_.get_executor());
    ASSERT_TRUE(borrowed.attach(fds[0], Ownership::borrowed));
  }
  // Still open: its owner (libpq, for a server connection) closes it.
  EXPECT_EQ(::send(fds[0], "x", 1, MSG_NOSIGNAL), 1);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(SocketStreamPeer, AddressesAreWrittenAsInetNtopWritesThem) {
  for (const char* written : {"0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.200.7"}) {
    sockaddr_storage address{};
    auto* ipv4 = reinterpret_cast<sockaddr_in*>(&address);
    ipv4->sin_family = AF_INET;
    ASSERT_EQ(::inet_pton(AF_INET, written, &ipv4->sin_addr), 1);
    const auto peer = SocketStream::peer_at(address);
    EXPECT_FALSE(peer.local);
    EXPECT_EQ(peer.address, written);
  }
  sockaddr_storage address{};
  auto* ipv6 = reinterpret_cast<sockaddr_in6*>(&address);
  ipv6->sin6_family = AF_INET6;
  ASSERT_EQ(::inet_pton(AF_INET6, "fd00::7", &ipv6->sin6_addr), 1);
  EXPECT_EQ(SocketStream::peer_at(address).address, "fd00::7");
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  EXPECT_TRUE(SocketStream::peer_at(unix_address).local);
}

// A read still pending when its io_context goes away is freed without its handler being called
// (the read's memory comes from Asio's per-thread cache, so this is its own path).
TEST(SocketStreamLifetime, APendingReadIsFreedWithItsContextAndItsHandlerNeverRuns) {
  int fds[2];
  stream_socketpair(fds);
  auto witness = std::make_shared<int>(0);
  bool called = false;
  {
    boost::asio::io_context context;
    SocketStream stream(context.get_executor());
    ASSERT_TRUE(stream.attach(fds[0], Ownership::owned));
    std::array<char, 64> buffer{};
    stream.async_read_some(
        buffer, AfterClaim::try_first, EndsWithReadyIdle{},
        [&called, witness](boost::system::error_code, std::size_t) { called = true; });
    context.run_for(50ms);  // nothing to read: the read stays pending
    EXPECT_EQ(witness.use_count(), 2) << "the pending read holds its handler";
  }  // the stream closes first (its read completes, aborted, into the queue), then the context
  EXPECT_FALSE(called);
  EXPECT_EQ(witness.use_count(), 1) << "the handler (and the read) were not freed";
  ::close(fds[1]);
}

// --- TLS ----------------------------------------------------------------------------------------

// A throwaway self-signed certificate and key, made in memory.
struct Identity {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{EVP_EC_gen("P-256"), &EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> certificate{X509_new(), &X509_free};
  Identity() {
    X509_set_version(certificate.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(certificate.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 3600);
    X509_set_pubkey(certificate.get(), key.get());
    X509_NAME* name = X509_get_subject_name(certificate.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("pgvigil-test"), -1, -1, 0);
    X509_set_issuer_name(certificate.get(), name);
    X509_sign(certificate.get(), key.get(), EVP_sha256());
  }
};

class TlsStreamTest : public ::testing::Test {
 protected:
  // OpenSSL's socket BIO writes with write(2); the daemon ignores SIGPIPE, and so does this test.
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }
  void SetUp() override {
    ASSERT_TRUE(identity_.key && identity_.certificate);
    server_context_.reset(SSL_CTX_new(TLS_server_method()));
    client_context_.reset(SSL_CTX_new(TLS_client_method()));
    ASSERT_EQ(SSL_CTX_use_certificate(server_context_.get(), identity_.certificate.get()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(server_context_.get(), identity_.key.get()), 1);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    // The peer: a blocking TLS server on its own thread, which echoes what it reads in
    // upper case and sends one more record after the first, unasked.
    peer_ = std::thread([this, fd = fds[1]] {
      SSL* ssl = SSL_new(server_context_.get());
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        char bytes[64];
        int n = 0;
        while ((n = SSL_read(ssl, bytes, sizeof bytes)) > 0) {
          for (int i = 0; i < n; ++i) bytes[i] = static_cast<char>(std::toupper(bytes[i]));
          SSL_write(ssl, bytes, n);
        }
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    });
    // Our side: the handshake done blocking (libpq's is done by the time it hands the socket
    // over), then the socket non-blocking, as libpq keeps it.
    SSL* ssl = SSL_new(client_context_.get());
    SSL_set_fd(ssl, fds[0]);
    ASSERT_EQ(SSL_connect(ssl), 1);
    make_non_blocking(fds[0]);
    ASSERT_TRUE(stream_.attach(fds[0], Ownership::owned, ssl));  // frees ssl, closes fds[0]
    ASSERT_TRUE(stream_.is_tls());
  }
  void TearDown() override {
    stream_.close();
    if (peer_.joinable()) peer_.join();
  }

  Identity identity_;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> server_context_{nullptr, &SSL_CTX_free};
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> client_context_{nullptr, &SSL_CTX_free};
  boost::asio::io_context context_;
  SocketStream stream_{context_.get_executor()};
  std::thread peer_;
};

TEST_F(TlsStreamTest, BytesGoThroughTheEncryptedLinkBothWays) {
  boost::system::error_code ec;
  bool needs_read = false;
  EXPECT_EQ(stream_.try_write("select"s, ec, needs_read), 6u);
  EXPECT_FALSE(ec);
  std::array<char, 64> buffer{};
  std::optional<Outcome> outcome;
  stream_.async_read_some(buffer, AfterClaim::try_first, EndsWithReadyIdle{},
                          [&](boost::system::error_code read_ec, std::size_t n) {
                            outcome = Outcome{read_ec, std::string(buffer.data(), n)};
                          });
  context_.run_for(2s);
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->ec);
  EXPECT_EQ(outcome->bytes, "SELECT");
  EXPECT_FALSE(stream_.drain_claimed()) << "over TLS nothing is claimed";

  // The coroutine forms of the slow paths.
  std::string echoed;
  boost::asio::co_spawn(
      context_,
      [&]() -> boost::asio::awaitable<void> {
        boost::system::error_code write_ec;
        co_await stream_.write_all("more bytes"s, write_ec);
        EXPECT_FALSE(write_ec);
        while (echoed.size() < 10) {
          boost::system::error_code read_ec;
          const auto n = co_await stream_.read_some(buffer, read_ec);
          if (read_ec) break;
          echoed.append(buffer.data(), n);
        }
      },
      boost::asio::detached);
  context_.restart();
  context_.run_for(2s);
  EXPECT_EQ(echoed, "MORE BYTES");
}

TEST_F(TlsStreamTest, SeveralPiecesGoOutInOrder) {
  const std::string a = "ab", b = "cd";
  const std::span<const char> pieces[] = {a, b};
  boost::system::error_code ec;
  bool needs_read = false;
  ASSERT_EQ(stream_.try_write(pieces, ec, needs_read), 4u);
  std::string echoed;
  std::array<char, 16> buffer{};
  while (echoed.size() < 4) {
    std::optional<Outcome> outcome;
    stream_.async_read_some(buffer, AfterClaim::wait, EndsWithReadyIdle{},
                            [&](boost::system::error_code read_ec, std::size_t n) {
                              outcome = Outcome{read_ec, std::string(buffer.data(), n)};
                            });
    context_.restart();
    context_.run_for(2s);
    ASSERT_TRUE(outcome && !outcome->ec);
    echoed += outcome->bytes;
  }
  EXPECT_EQ(echoed, "ABCD");
}

TEST_F(TlsStreamTest, AReadWaitIsReadyAtOnceWhenOpenSslHoldsDecryptedBytes) {
  boost::system::error_code ec;
  bool needs_read = false;
  ASSERT_EQ(stream_.try_write("abcdef"s, ec, needs_read), 6u);
  // Read one byte: OpenSSL decrypts the whole record and keeps the rest, which the socket no
  // longer shows, so only the stream's own check can report it.
  std::array<char, 1> one{};
  std::optional<Outcome> first;
  stream_.async_read_some(one, AfterClaim::wait, EndsWithReadyIdle{},
                          [&](boost::system::error_code read_ec, std::size_t n) {
                            first = Outcome{read_ec, std::string(one.data(), n)};
                          });
  context_.run_for(2s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->bytes, "A");
  EXPECT_EQ(stream_.peek(), SocketStream::Peek::data);
  std::optional<boost::system::error_code> ready;
  stream_.async_wait(SocketStream::Ready::read,
                     [&](boost::system::error_code wait_ec) { ready = wait_ec; });
  context_.restart();
  context_.run_for(200ms);
  ASSERT_TRUE(ready) << "the wait did not see the bytes OpenSSL holds";
  EXPECT_FALSE(*ready);
}

}  // namespace
}  // namespace pgvigil::stream
