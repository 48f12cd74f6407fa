@podman
Feature: Mutual TLS between the gateway and the supervisor in each Podman sandbox

  As an operator who runs AI agents in Podman sandboxes
  I want every sandbox supervisor to reach the gateway over mutually authenticated TLS
  So that no sandbox traffic crosses the network in clear and no stranger joins in

  Terms used below:
  - gateway: the OpenShell server that manages sandboxes through the Podman driver
  - supervisor: the process inside each sandbox that calls the gateway back over gRPC
  - guest TLS: the CA, client certificate and key the driver hands to each sandbox,
    set with the guest_tls_ca, guest_tls_cert and guest_tls_key keys
  - driver table: the [openshell.drivers.podman] table of the gateway's TOML
  - health port: the plaintext listener for liveness, apart from the gRPC port

  Background:
    Given a certificate authority that signed a gateway and a client certificate

  @criterion.supervisor-connects
  Scenario: A sandbox supervisor connects to the gateway over mutual TLS
    Given a Podman gateway with mTLS
    When a sandbox starts
    Then the supervisor connects over https
    And the SDK sees the sandbox ready over mTLS

  @criterion.peer-identity
  @only.with_target=reference
  Scenario: The gateway knows the supervisor by its client certificate
    Given a Podman gateway with mTLS
    When a sandbox starts
    Then the gateway recorded the supervisor's client certificate subject:
      """
      CN=openshell-client,OU=openshell-user
      """

  @criterion.container-spec
  Scenario: The sandbox container carries the client TLS material read-only
    Given a Podman gateway with mTLS
    When a sandbox starts
    Then the container has these read-only bind mounts:
      | guest TLS file     | container path                    |
      | CA certificate     | /etc/openshell/tls/client/ca.crt  |
      | client certificate | /etc/openshell/tls/client/tls.crt |
      | client key         | /etc/openshell/tls/client/tls.key |
    And the container environment holds:
      | variable           | value                                      |
      | OPENSHELL_ENDPOINT | https://host.containers.internal:<gateway port> |
      | OPENSHELL_TLS_CA   | /etc/openshell/tls/client/ca.crt           |
      | OPENSHELL_TLS_CERT | /etc/openshell/tls/client/tls.crt          |
      | OPENSHELL_TLS_KEY  | /etc/openshell/tls/client/tls.key          |
    And the container metadata holds no private key material

  @criterion.partial-guest-tls
  Scenario Outline: A partial guest TLS configuration is refused (only <set> in the driver table)
    Given a gateway whose driver table sets only <set>
    When the gateway starts
    Then it refuses to start, naming the missing <missing>
    And no sandbox container exists

    Examples:
      | set                            | missing                        |
      | guest_tls_ca                   | guest_tls_cert, guest_tls_key  |
      | guest_tls_cert                 | guest_tls_ca, guest_tls_key    |
      | guest_tls_key                  | guest_tls_ca, guest_tls_cert   |
      | guest_tls_ca, guest_tls_cert   | guest_tls_key                  |
      | guest_tls_ca, guest_tls_key    | guest_tls_cert                 |
      | guest_tls_cert, guest_tls_key  | guest_tls_ca                   |
