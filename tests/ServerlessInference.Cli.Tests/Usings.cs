global using ServerlessInference.Models;
global using ServerlessInference.Protocol;
