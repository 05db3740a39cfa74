// Builders produce exact bytes and round-trip through the decoder and the parsers.

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "proxy/wire/backend_messages.hpp"
#include "proxy/wire/backend_parser.hpp"
#include "proxy/wire/frame_decoder.hpp"
#include "proxy/wire/frontend_messages.hpp"
#include "proxy/wire/frontend_parser.hpp"
#include "tests/proxy/wire_bytes.hpp"

namespace pgvigil::proxy::wire {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using test::as_span;
using test::be32;
using test::to_string;

// Decodes exactly one frame filling `bytes`.
Frame only_frame(const std::string& bytes, Phase phase) {
  const DecodeResult result = FrameDecoder(phase).decode(as_span(bytes));
  EXPECT_TRUE(std::holds_alternative<Frame>(result));
  if (!std::holds_alternative<Frame>(result)) return {};
  const Frame frame = std::get<Frame>(result);
  EXPECT_EQ(frame.wire_size, bytes.size());
  return frame;
}

TEST(BackendMessages, AuthenticationBytes) {
  std::string out;
  append_authentication_ok(out);
  EXPECT_EQ(out, "R" + be32(8) + be32(0));
  out.clear();
  append_authentication_cleartext_password(out);
  EXPECT_EQ(out, "R" + be32(8) + be32(3));
  out.clear();
  append_authentication_md5_password(out, {0x01, 0x02, 0xfe, 0xff});
  EXPECT_EQ(out, "R" + be32(12) + be32(5) + "\x01\x02\xfe\xff");
  out.clear();
  const std::array<std::string_view, 1> mechanisms{"SCRAM-SHA-256"};
  append_authentication_sasl(out, mechanisms);
  EXPECT_EQ(out, "R" + be32(4 + 4 + 14 + 1) + be32(10) + "SCRAM-SHA-256\0\0"s);
  out.clear();
  append_authentication_sasl_continue(out, "r=abc");
  EXPECT_EQ(out, "R" + be32(13) + be32(11) + "r=abc");
  out.clear();
  append_authentication_sasl_final(out, "v=xyz");
  EXPECT_EQ(out, "R" + be32(13) + be32(12) + "v=xyz");
}

TEST(BackendMessages, AppendsWithoutDisturbingEarlierBytes) {
  std::string out = "prefix";
  append_authentication_ok(out);
  append_ready_for_query(out, TransactionStatus::idle);
  EXPECT_EQ(out, "prefix" + ("R" + be32(8) + be32(0)) + ("Z" + be32(5) + "I"));
}

TEST(BackendMessages, EncryptionRefusalIsOneByte) {
  std::string out;
  append_encryption_refusal(out);
  EXPECT_EQ(out, "N");
}

TEST(BackendMessages, ReadyForQueryRoundTrips) {
  for (const TransactionStatus status :
       {TransactionStatus::idle, TransactionStatus::in_transaction, TransactionStatus::failed}) {
    std::string out;
    append_ready_for_query(out, status);
    const Frame frame = only_frame(out, Phase::backend);
    EXPECT_EQ(frame.type, 'Z');
    EXPECT_EQ(parse_ready_for_query(frame.payload), status);
  }
  EXPECT_FALSE(parse_ready_for_query(as_span("X")));
  EXPECT_FALSE(parse_ready_for_query(as_span("II")));
}

TEST(BackendMessages, ErrorResponseRoundTrips) {
  std::string out;
  append_error_response(out,
                        {Severity::fatal, "28P01", "password authentication failed for user \"a\"",
                         "some detail", "some hint"});
  const Frame frame = only_frame(out, Phase::backend);
  EXPECT_EQ(frame.type, 'E');
  const auto error = parse_error_response(frame.payload);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->severity, "FATAL");
  EXPECT_EQ(error->sqlstate, "28P01");
  EXPECT_EQ(error->message, "password authentication failed for user \"a\"");
  EXPECT_EQ(error->detail, "some detail");
  EXPECT_EQ(error->hint, "some hint");
}

TEST(BackendMessages, NoticeOmitsEmptyFieldsAndCutsAtNul) {
  std::string out;
  append_notice_response(out, {Severity::warning, "01000", "before\0after"sv, "", ""});
  const std::string body = "SWARNING\0VWARNING\0C01000\0Mbefore\0\0"s;
  EXPECT_EQ(out, "N" + be32(4 + static_cast<std::uint32_t>(body.size())) + body);
}

TEST(BackendMessages, ParameterStatusAndKeyDataRoundTrip) {
  std::string out;
  append_parameter_status(out, "server_version", "15.8");
  Frame frame = only_frame(out, Phase::backend);
  const auto parameter = parse_parameter_status(frame.payload);
  ASSERT_TRUE(parameter);
  EXPECT_EQ(parameter->name, "server_version");
  EXPECT_EQ(parameter->value, "15.8");

  out.clear();
  append_backend_key_data(out, 4242, 0xdeadbeef);
  frame = only_frame(out, Phase::backend);
  const auto key = parse_backend_key_data(frame.payload);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->process_id, 4242u);
  EXPECT_EQ(key->secret_key, 0xdeadbeefu);
}

TEST(BackendParser, RefusesMalformedPayloads) {
  EXPECT_FALSE(parse_error_response(as_span("")));
  EXPECT_FALSE(parse_error_response(as_span("SERROR"s)));          // unterminated field
  EXPECT_FALSE(parse_error_response(as_span("SERROR\0"s)));        // no list terminator
  EXPECT_FALSE(parse_error_response(as_span("SERROR\0\0junk"s)));  // bytes after it
  EXPECT_FALSE(parse_parameter_status(as_span("name\0value"s)));
  EXPECT_FALSE(parse_parameter_status(as_span("name\0value\0extra"s)));
  EXPECT_FALSE(parse_backend_key_data(as_span("1234567")));
  EXPECT_FALSE(parse_backend_key_data(as_span("123456789")));
}

TEST(BackendParser, FallsBackToLocalisedSeverity) {
  const std::string payload = "SFEHLER\0C42000\0Mx\0\0"s;  // views point into it
  const auto error = parse_error_response(as_span(payload));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->severity, "FEHLER");
  EXPECT_EQ(error->sqlstate, "42000");
}

TEST(BackendMessages, NegotiateProtocolVersion) {
  std::string out;
  const std::vector<std::string> options{"_pq_.a"};
  append_negotiate_protocol_version(out, 0, options);
  EXPECT_EQ(out, "v" + be32(4 + 4 + 4 + 7) + be32(kProtocolVersion30) + be32(1) + "_pq_.a\0"s);
}

TEST(FrontendMessages, StartupMessageRoundTrips) {
  std::string out;
  const std::vector<StartupParameter> parameters{
      {"user", "alice"}, {"database", "db"}, {"application_name", "app"}};
  append_startup_message(out, parameters);
  const Frame frame = only_frame(out, Phase::startup);
  EXPECT_EQ(frame.startup_code, kProtocolVersion30);
  const auto message = parse_startup_message(frame.payload, frame.startup_code);
  ASSERT_TRUE(message) << message.error();
  EXPECT_EQ(message->user, "alice");
  EXPECT_EQ(message->database, "db");
  EXPECT_EQ(message->application_name, "app");
}

TEST(FrontendMessages, RequestsRoundTrip) {
  std::string out;
  append_ssl_request(out);
  EXPECT_EQ(out, be32(8) + be32(kSslRequestCode));
  EXPECT_EQ(only_frame(out, Phase::startup).startup_code, kSslRequestCode);
  out.clear();
  append_gssenc_request(out);
  EXPECT_EQ(only_frame(out, Phase::startup).startup_code, kGssEncRequestCode);
  out.clear();
  append_cancel_request(out, 77, 0x80000001);
  const Frame frame = only_frame(out, Phase::startup);
  EXPECT_EQ(frame.startup_code, kCancelRequestCode);
  const auto key = parse_cancel_request(frame.payload);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->process_id, 77u);
  EXPECT_EQ(key->secret_key, 0x80000001u);
}

TEST(FrontendMessages, SimpleMessagesBytes) {
  std::string out;
  append_query(out, "");
  EXPECT_EQ(out, "Q" + be32(5) + "\0"s);
  out.clear();
  append_query(out, "SELECT 1");
  const Frame frame = only_frame(out, Phase::normal);
  EXPECT_EQ(to_string(frame.payload), "SELECT 1\0"s);
  out.clear();
  append_sync(out);
  EXPECT_EQ(out, "S" + be32(4));
  out.clear();
  append_terminate(out);
  EXPECT_EQ(out, "X" + be32(4));
}

TEST(FrontendMessages, AuthenticationRepliesRoundTrip) {
  std::string out;
  append_password_message(out, "md5abc");
  Frame frame = only_frame(out, Phase::normal);
  EXPECT_EQ(parse_password_message(frame.payload), "md5abc");

  out.clear();
  append_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=abc");
  frame = only_frame(out, Phase::normal);
  const auto initial = parse_sasl_initial_response(frame.payload);
  ASSERT_TRUE(initial);
  EXPECT_EQ(initial->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(initial->data, "n,,n=,r=abc");

  out.clear();
  append_sasl_response(out, "c=biws,r=abc,p=xyz");
  frame = only_frame(out, Phase::normal);
  EXPECT_EQ(parse_sasl_response(frame.payload), "c=biws,r=abc,p=xyz");
}

TEST(FrontendParser, RefusesMalformedAuthenticationReplies) {
  EXPECT_FALSE(parse_password_message(as_span("")));
  EXPECT_FALSE(parse_password_message(as_span("secret")));
  EXPECT_FALSE(parse_password_message(as_span("sec\0ret\0"s)));
  EXPECT_FALSE(parse_sasl_initial_response(as_span("SCRAM-SHA-256")));
  EXPECT_FALSE(parse_sasl_initial_response(as_span("SCRAM-SHA-256\0\0\0"s)));
  EXPECT_FALSE(parse_sasl_initial_response(as_span("M\0"s + be32(5) + "abcd")));
  EXPECT_FALSE(parse_sasl_initial_response(as_span("M\0"s + be32(3) + "abcd")));
  EXPECT_FALSE(parse_sasl_initial_response(as_span("M\0"s + be32(0xffffffff) + "a")));
  const auto none = parse_sasl_initial_response(as_span("M\0"s + be32(0xffffffff)));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->data, "");
}

}  // namespace
}  // namespace pgvigil::proxy::wire
